"""Long-term memory failing under running turns: a worker killed mid-job, PostgreSQL going away.

A memory job is idempotent and redelivered, so a worker's death costs time, not work; the turn
never depends on PostgreSQL (recall degrades to no facts), and a summary that cannot store its
facts fails, is retried with backoff, and lands once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.apps import serving
from tests.helpers import wait_until
from turnstate import Settings
from turnstate.chat import Chat
from turnstate.errors import MemoryUnavailable
from turnstate.llm import OfflineModel
from turnstate.runtime import open_runtime
from turnstate.servers import EmbeddedPostgres
from turnstate.store import open_store
from turnstate.worker import SummaryScheduler, memory_docket, open_memory, run_worker, summarize_session

FACTFUL = [
    "Hi, my name is Ada Lovelace.",
    "My favourite food is sushi.",
    "I live in Lisbon.",
    "I'm allergic to peanuts.",
]


def memory_settings(make_settings: Any, key_prefix: str, redis_url: str, database_url: str, **more: Any) -> Settings:
    """Small windows (a summary step is due after a few turns), the offline model, a tenant of the test's own."""
    settings: Settings = make_settings(
        redis_url=redis_url,
        database_url=database_url,
        tenant=key_prefix,
        window_messages=4,
        max_messages=6,
        summary_every=2,
        worker_redelivery_seconds=1.0,
        openai_api_key=None,
        openai_base_url=None,
        **more,
    )
    return settings


async def test_a_worker_killed_mid_job_leaves_the_job_to_another_which_commits_it_once(
    make_settings: Any, key_prefix: str, redis_url: str, database_url: str, standin: Any, tmp_path: Path
) -> None:
    settings = memory_settings(make_settings, key_prefix, redis_url, database_url)
    # The first worker's model answers nothing: the job will be mid-way (its facts being extracted)
    # when the worker dies, however long the worker took to start (it starts while the turns run).
    standin.stall(60)
    env = {
        **os.environ,
        "TURNSTATE_REDIS_URL": redis_url,
        "TURNSTATE_DATABASE_URL": database_url,
        "TURNSTATE_KEY_PREFIX": key_prefix,
        "TURNSTATE_TENANT": key_prefix,
        "TURNSTATE_DATA_DIR": str(tmp_path),
        "TURNSTATE_WINDOW_MESSAGES": "4",
        "TURNSTATE_MAX_MESSAGES": "6",
        "TURNSTATE_SUMMARY_EVERY": "2",
        "TURNSTATE_WORKER_REDELIVERY_SECONDS": "1",
        "OPENAI_BASE_URL": standin.base_url,
        "OPENAI_API_KEY": "sk-x",
    }
    log = tmp_path / "first-worker.log"
    with log.open("wb") as out:
        first = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "turnstate", "worker", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    async with AsyncExitStack() as stack:
        try:
            store = await open_store(settings=settings)
            stack.push_async_callback(store.aclose)
            memory = await stack.enter_async_context(open_memory(settings, store, OfflineModel()))
            docket = await stack.enter_async_context(memory_docket(settings, store))
            chat = Chat(store, memory.model, system_prompt="test", schedule_summary=SummaryScheduler(docket))
            for n, line in enumerate([*FACTFUL, "Thanks!", "Bye."]):
                await chat.turn("killed", line, message_id=f"m{n}", user_id="ada")
            await chat.drain()  # the summary step is enqueued
            work = await store.summary_work("killed")
            assert work.upto == 0 and work.messages

            async def mid_job() -> bool:
                return any(r.path.endswith("/chat/completions") for r in standin.requests)

            try:
                await wait_until(mid_job, within=60)
            except TimeoutError:
                raise AssertionError(f"the first worker never called the model: {log.read_text()[-3000:]}") from None
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert (await store.info("killed")).summary_upto == 0  # the dead worker committed nothing
        assert await memory.facts.list_facts(key_prefix, user_id="ada") == []
        standin.reset()

        # A second worker (the offline model) finds the job once the dead worker's claim is stale.
        second = asyncio.create_task(run_worker(settings))
        try:

            async def summarised() -> bool:
                return (await store.info("killed")).summary_upto > 0

            await wait_until(summarised, within=60)
        finally:
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # pydocket may end the loop quietly
                await second
        info = await store.info("killed")
        facts = await memory.facts.list_facts(key_prefix, user_id="ada")
        # The step again, as a duplicate delivery would run it: the watermark moved, so nothing changes.
        await summarize_session(key_prefix, "killed", "ada", 0, memory)
        again = await store.info("killed")
        assert (again.summary, again.summary_upto, again.archived) == (info.summary, info.summary_upto, info.archived)
        held = {m.seq for m in await store.history("killed")}
    assert all(seq <= info.summary_upto or seq in held for seq in range(1, 13))  # nothing lost
    assert info.summary_upto == work.target and info.summary is not None
    assert info.summary.count("my name is Ada Lovelace") == 1  # folded in once
    keys = [f.key for f in facts]
    assert len(keys) == len(set(keys)) >= 3  # each fact once: name, food, city, allergy
    assert [r for r in standin.requests if r.path.endswith("/chat/completions")] == []  # worker 2: offline
    print(
        f"\nFAULT worker SIGKILL mid-job: turns=6 acknowledged=12 lost=0 duplicated=0 summaries committed=1 "
        f"(upto {info.summary_upto}) facts={len(keys)}"
    )


@pytest.fixture
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own (the shared one must not stop under other tests): about 2-3 s."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg-faults") / "pg")  # its data survives a stop
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def pg_runtime(
    private_postgres: EmbeddedPostgres, make_settings: Any, key_prefix: str, redis_url: str
) -> AsyncIterator[Chat]:
    """The service's runtime (store, offline model, recall, scheduler, a worker in-process) on the private PG."""
    settings = memory_settings(
        make_settings, key_prefix, redis_url, private_postgres.url, recall_budget_seconds=10, connect_timeout_seconds=1
    )  # recall waits for a pooled connection at most 1 s, so with the database down it fails rather than runs late
    async with AsyncExitStack() as stack:
        runtime = await open_runtime(settings, stack, worker=True)
        yield runtime.chat


async def test_postgres_down_degrades_recall_and_delays_summaries_until_it_is_back(
    pg_runtime: Chat, private_postgres: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    chat, store = pg_runtime, pg_runtime.store
    assert chat.recall is not None
    facts = chat.recall.facts

    async def summarised(session: str) -> bool:
        return (await store.info(session)).summary_upto > 0

    async def talk(session: str, lines: list[str], first: int = 0) -> list[Any]:
        results = [
            await chat.turn(session, line, message_id=f"{session}-{n}", user_id="ada")
            for n, line in enumerate(lines, first)
        ]
        await chat.drain()
        return results

    # With the database up: a summary with facts, and recall finds them.
    await talk("before", [*FACTFUL[:2], "ok", "ok"])
    await wait_until(lambda: summarised("before"), within=30)
    [up] = await talk("during", ["What should I eat tonight?"])
    assert "The user's favourite food is sushi." in [f.text for f in up.facts]

    await asyncio.to_thread(private_postgres.stop)
    down = await talk("during", ["I live in Lisbon.", "ok", "ok"], first=1)  # the last finds a summary due
    assert all(r.reply.content and r.facts == () for r in down)  # every turn answered, without facts
    assert any(r.getMessage().startswith("recall for") for r in caplog.records)  # failed or late: logged

    def summary_failed() -> bool:
        return any(isinstance(r.exc_info and r.exc_info[1], MemoryUnavailable) for r in caplog.records)

    async def failed() -> bool:
        return summary_failed()

    await wait_until(failed, within=30)  # the step ran, could not store its facts, and will be retried
    assert not await summarised("during")

    await asyncio.to_thread(private_postgres.start)
    await wait_until(lambda: summarised("during"), within=60)  # the retry lands, with its facts
    kept = {f.key: f.text for f in await facts.list_facts(store.settings.tenant, user_id="ada")}
    assert "Lisbon" in kept["user.location"]
    [back] = await talk("during", ["Where do I live?"], first=4)
    assert any("Lisbon" in f.text for f in back.facts)
    history = await store.history("during")
    assert len([m for m in history if m.role == "user"]) == len({m.id for m in history if m.role == "user"})
    failures = sum(1 for r in caplog.records if isinstance(r.exc_info and r.exc_info[1], MemoryUnavailable))
    print(
        f"\nFAULT PostgreSQL down: turns={1 + len(down) + 1} (while down {len(down)}, all answered, none with facts), "
        f"summary attempts failed={failures}, then landed (upto {(await store.info('during')).summary_upto})"
    )


async def test_the_service_starts_and_chats_while_postgres_is_down(
    private_postgres: EmbeddedPostgres, make_settings: Any, key_prefix: str, redis_url: str
) -> None:
    """A replica that starts (a deploy, a cold start) during a database outage must still chat."""
    settings = memory_settings(
        make_settings, key_prefix, redis_url, private_postgres.url, recall_budget_seconds=10, connect_timeout_seconds=1
    ).model_copy(update={"auth": "local", "worker_in_service": True, "rate_limit": None})
    url = private_postgres.url
    await asyncio.to_thread(private_postgres.stop)
    async with serving(settings) as api:  # before: MemoryUnavailable, and the service did not start
        lines = [*FACTFUL[2:], "ok"]
        for n, line in enumerate(lines):
            r = await api.post(
                "/v1/sessions/cold/turns", json={"message": line, "message_id": f"m{n}", "user_id": "ada"}
            )
            assert r.status_code == 200 and r.json()["context"]["facts"] == []
        facts = await api.get("/v1/users/ada/facts")
        assert facts.status_code == 503 and facts.json()["title"] == "Memory unavailable"
        assert facts.headers["retry-after"] == "1" and url.split("?")[0] not in facts.text  # no password, no URL

        await asyncio.to_thread(private_postgres.start)
        r = await api.post("/v1/sessions/cold/turns", json={"message": "ok", "message_id": "m3", "user_id": "ada"})
        assert r.status_code == 200  # the summary step is due: the worker connects and stores the facts

        async def summarised() -> bool:
            return bool((await api.get("/v1/sessions/cold")).json()["summary_upto"] > 0)

        await wait_until(summarised, within=60)
        kept = (await api.get("/v1/users/ada/facts")).json()
    assert any("Lisbon" in f["text"] for f in kept["facts"])
    print(
        "\nFAULT service started with PostgreSQL down: turns=4 answered=4 (no facts), facts API 503, then memory works"
    )
