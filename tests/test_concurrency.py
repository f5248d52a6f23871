"""Racing turns of one session: queue serialises, reject refuses, interleave keeps everything."""

from __future__ import annotations

import asyncio
import itertools
import sys
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from tests.helpers import assert_consistent, one_turn
from turnstate import SessionBusy, StaleTurn, Store
from turnstate.keys import session_keys

RACERS = 16


async def test_queue_loses_nothing_under_16_concurrent_turns(store: Store, session_id: str) -> None:
    await asyncio.gather(*(one_turn(store, session_id, n) for n in range(RACERS)))
    history = await store.history(session_id)
    assert len(history) == 2 * RACERS
    assert_consistent(history, expected_turns=RACERS)


async def test_queue_loses_nothing_across_processes(
    redis_url: str, key_prefix: str, store: Store, session_id: str
) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.race_worker", redis_url, key_prefix, session_id, str(p * 4), "4"
        )
        for p in range(4)
    ]
    codes = await asyncio.gather(*(p.wait() for p in procs))
    assert codes == [0, 0, 0, 0]
    history = await store.history(session_id)
    assert {m.content for m in history if m.role == "user"} == {f"question {n}" for n in range(RACERS)}
    assert_consistent(history, expected_turns=RACERS)


async def test_reject_refuses_a_busy_session_and_stores_nothing_for_it(make_store: Any, session_id: str) -> None:
    store = make_store(policy="reject")
    results = await asyncio.gather(
        *(one_turn(store, session_id, n, think=0.1) for n in range(RACERS)), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    rejected = [r for r in results if isinstance(r, SessionBusy)]
    assert len(accepted) + len(rejected) == RACERS
    assert accepted and rejected
    assert all(0 < r.retry_after <= store.settings.lease_seconds and not r.waited for r in rejected)
    history = await store.history(session_id)
    assert_consistent(history, expected_turns=len(accepted))


async def test_interleave_keeps_every_message_but_not_the_order(make_store: Any, session_id: str) -> None:
    store = make_store(policy="interleave")
    await asyncio.gather(*(one_turn(store, session_id, n, think=0.05) for n in range(RACERS)))
    history = await store.history(session_id)
    assert len(history) == len({m.id for m in history}) == 2 * RACERS
    # every question was stored before any answer: replies do not follow their questions
    adjacent = sum(1 for a, b in itertools.pairwise(history) if b.reply_to == a.seq)
    assert adjacent < RACERS


async def test_a_crashed_turn_blocks_the_session_only_until_its_lease_expires(make_store: Any, session_id: str) -> None:
    store = make_store(lease_seconds=0.3)
    crashed = await store.begin_turn(session_id, "the process dies after this", message_id="crash")
    await one_turn(store, session_id, 1)  # queued behind the lease, then runs
    with pytest.raises(StaleTurn):
        await store.finish_turn(crashed, "too late")
    history = await store.history(session_id)
    assert [m.id for m in history] == ["crash", "q-1", "q-1:reply"]


async def test_a_queued_turn_starts_when_the_running_one_finishes(make_store: Any, session_id: str) -> None:
    store = make_store(lease_seconds=60)
    first = await store.begin_turn(session_id, "first", message_id="first")
    queued = asyncio.create_task(store.begin_turn(session_id, "second", message_id="second"))
    await asyncio.sleep(0.05)
    assert not queued.done()
    await store.finish_turn(first, "done")
    second = await asyncio.wait_for(queued, timeout=5)  # woken, not left waiting for the 60 s lease
    assert [m.id for m in second.messages] == ["first", "first:reply", "second"]


async def test_queue_wait_has_a_limit(make_store: Any, session_id: str) -> None:
    store = make_store(queue_wait_seconds=0.1)
    await store.begin_turn(session_id, "holds the lease")
    with pytest.raises(SessionBusy) as excinfo:
        await store.begin_turn(session_id, "waits too long", message_id="late")
    assert excinfo.value.retry_after > 0
    assert excinfo.value.waited
    assert [m.content for m in await store.history(session_id)] == ["holds the lease"]


async def test_a_stale_turn_stores_nothing(make_store: Any, session_id: str) -> None:
    store = make_store(lease_seconds=0.1)
    old = await store.begin_turn(session_id, "slow", message_id="slow")
    await asyncio.sleep(0.15)
    retried = await store.begin_turn(session_id, "slow", message_id="slow")  # the client retried
    assert retried.resumed and retried.seq == old.seq
    with pytest.raises(StaleTurn):
        await store.append(session_id, "tool", "late tool output", turn=old)
    with pytest.raises(StaleTurn):
        await store.finish_turn(old, "late answer")
    await store.finish_turn(retried, "answer")
    assert [m.id for m in await store.history(session_id)] == ["slow", "slow:reply"]


async def test_a_queued_retry_answered_meanwhile_passes_its_wake_up_on(
    make_store: Any, session_id: str, client: Any
) -> None:
    # Queued behind another turn: a message and its retry (same id), then a second message. The
    # message takes the lease, is answered, and its release wakes the retry, which finds it
    # answered and takes no lease; the second message must not wait for a release that never comes.
    store: Store = make_store(lease_seconds=300, queue_wait_seconds=300)
    holder = await store.begin_turn(session_id, "first", message_id="h")
    wake = session_keys(store.settings.key_prefix, store.settings.tenant, session_id).wake

    async def blocked_clients() -> int:
        """Clients blocked on the server holding the session (on a cluster, its slot's node)."""
        if isinstance(client, RedisCluster):
            await client.initialize()  # learns the slots on first use
            info = await client.info("clients", target_nodes=client.get_node_from_key(wake))
        else:
            info = await client.info("clients")
        return int(info["blocked_clients"])

    async def queued(message_id: str) -> asyncio.Task[Any]:
        blocked = await blocked_clients()
        task = asyncio.create_task(store.begin_turn(session_id, f"message {message_id}", message_id=message_id))
        async with asyncio.timeout(10):  # blocked in this order, woken in this order
            while await blocked_clients() <= blocked:  # noqa: ASYNC110 - server state
                await asyncio.sleep(0.01)
        return task

    message, retry, second = await queued("a"), await queued("a"), await queued("b")
    await store.finish_turn(holder, "reply to first")
    answered = await store.finish_turn(await message, "reply to a")
    assert (await retry).reply == answered
    turn = await asyncio.wait_for(second, 10)  # without the wake-up passed on: up to the 300 s lease
    await store.finish_turn(turn, "reply to b")
    assert [m.content for m in await store.history(session_id)][-2:] == ["message b", "reply to b"]
