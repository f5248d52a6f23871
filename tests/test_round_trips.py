"""Two round trips per turn, counted on the server with MONITOR; NOSCRIPT recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from turnstate import Store


@pytest.fixture(autouse=True)
def one_server(redis_url: str) -> None:
    """MONITOR watches one server; on a cluster, test_cluster.py counts on the slot's own node."""
    if "+cluster" in redis_url:
        pytest.skip("counted per node by test_cluster.py")


@asynccontextmanager
async def server_commands(url: str, marker: str) -> AsyncIterator[list[list[str]]]:
    """Collect the commands clients send (not those scripts run) that mention `marker`."""
    seen: list[list[str]] = []
    watcher = aioredis.Redis.from_url(url, decode_responses=True)
    sender = aioredis.Redis.from_url(url)
    done = f"{marker}:end"
    async with watcher.monitor() as monitor:

        async def collect() -> None:
            while True:
                event = await monitor.next_command()
                if event.get("client_type") == "lua" or marker not in event["command"]:
                    continue
                if done in event["command"]:
                    return
                seen.append(event["command"].split())

        task = asyncio.create_task(collect())
        try:
            yield seen
        finally:
            await sender.echo(done)
            await asyncio.wait_for(task, timeout=5)
            await sender.aclose()
    await watcher.aclose()


async def count(url: str, marker: str, action: Callable[[], Awaitable[object]]) -> list[str]:
    async with server_commands(url, marker) as seen:
        await action()
    return [cmd[0].lower() for cmd in seen]


async def test_a_turn_is_one_evalsha_to_begin_and_one_to_finish(store: Store, redis_url: str, session_id: str) -> None:
    for n in range(30):  # a long conversation first: the cost must not grow with it
        turn = await store.begin_turn(session_id, f"q{n}")
        await store.finish_turn(turn, f"a{n}")
    holder: dict[str, object] = {}

    async def begin() -> None:
        holder["turn"] = await store.begin_turn(session_id, "Hello!", message_id="m-1")

    async def finish() -> None:
        await store.finish_turn(holder["turn"], "Hi!")  # type: ignore[arg-type]

    assert await count(redis_url, session_id, begin) == ["evalsha"]
    assert await count(redis_url, session_id, finish) == ["evalsha"]


async def test_noscript_after_a_flush_costs_one_eval_then_evalsha_again(
    store: Store, client: aioredis.Redis, redis_url: str, session_id: str
) -> None:
    await store.append(session_id, "system", "warm the script cache")
    await client.script_flush()

    async def turn() -> None:
        t = await store.begin_turn(session_id, "after the flush")
        await store.finish_turn(t, "still fine")

    assert await count(redis_url, session_id, turn) == ["evalsha", "eval", "evalsha", "eval"]
    assert await count(redis_url, session_id, turn) == ["evalsha", "evalsha"]
    assert [m.content for m in await store.history(session_id)][-2:] == ["after the flush", "still fine"]
