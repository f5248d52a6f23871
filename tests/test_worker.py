"""Long-term memory end to end, on real Valkey, real PostgreSQL + pgvector and real workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import pytest

from tests.helpers import wait_until
from turnstate import Settings
from turnstate.chat import Chat
from turnstate.llm import OfflineModel
from turnstate.memory.recall import Recall
from turnstate.store import open_store
from turnstate.worker import (
    SUMMARY_RETRY,
    Memory,
    SummaryScheduler,
    enqueue_summary,
    jobs_use,
    memory_docket,
    open_memory,
    run_worker,
    serving_jobs,
    summarize_session,
)

FACTFUL = [
    "Hi, my name is Ada Lovelace.",
    "My favourite food is sushi.",
    "I live in Lisbon.",
    "I'm allergic to peanuts.",
]


@pytest.fixture
def memory_settings(make_settings: Any, redis_url: str, database_url: str, key_prefix: str) -> Settings:
    settings: Settings = make_settings(
        redis_url=redis_url,
        database_url=database_url,
        tenant=key_prefix,  # a tenant of its own in the shared database
        window_messages=4,
        max_messages=6,
        summary_every=2,
        worker_redelivery_seconds=1.0,
    )
    return settings


@pytest.fixture
async def memory(memory_settings: Settings) -> AsyncIterator[Memory]:
    store = await open_store(settings=memory_settings)
    async with store, open_memory(memory_settings, store, OfflineModel()) as opened:
        yield opened


@pytest.fixture
async def chat(memory: Memory, memory_settings: Settings) -> AsyncIterator[Chat]:
    async with AsyncExitStack() as stack:
        docket = await stack.enter_async_context(memory_docket(memory_settings, memory.store))
        recall = Recall(memory.facts, memory.embedder, memory.store.tokens, budget_seconds=5.0)
        yield Chat(
            memory.store, memory.model, system_prompt="test", recall=recall, schedule_summary=SummaryScheduler(docket)
        )


async def talk(chat: Chat, session: str, lines: list[str], user: str = "ada") -> None:
    for n, line in enumerate(lines):
        await chat.turn(session, line, message_id=f"{session}-{n}", user_id=user)
    await chat.drain()  # the summary steps are scheduled in the background


async def test_facts_learned_in_one_session_are_recalled_in_the_next(
    chat: Chat, memory: Memory, memory_settings: Settings
) -> None:
    await talk(chat, "first", [*FACTFUL, "Thanks!", "Bye for now."])
    await run_worker(memory_settings, until_finished=True)
    info = await memory.store.info("first")
    assert info.summary is not None and "Ada" in info.summary
    assert info.summary_upto >= 8  # the oldest messages left the 4-message window and were folded
    facts = {f.key: f.text for f in await memory.facts.list_facts(memory_settings.tenant, user_id="ada")}
    assert facts["user.favourite_food"] == "The user's favourite food is sushi."
    later = await chat.turn("second", "What should I eat tonight?", user_id="ada")
    assert "The user's favourite food is sushi." in [f.text for f in later.facts]
    stranger = await chat.turn("third", "What should I eat tonight?", user_id="bob")
    assert stranger.facts == ()


async def test_facts_never_cross_tenants(chat: Chat, memory: Memory, memory_settings: Settings) -> None:
    await talk(chat, "t1", [*FACTFUL, "ok", "ok"])
    await run_worker(memory_settings, until_finished=True)
    other = f"{memory_settings.tenant}-other"
    result = await chat.turn("t1", "What is my favourite food?", user_id="ada", tenant=other)
    assert result.facts == ()
    assert await memory.facts.list_facts(other, user_id="ada") == []


async def test_competing_workers_commit_a_step_once(memory: Memory, memory_settings: Settings, chat: Chat) -> None:
    for n, line in enumerate([*FACTFUL, "a", "b"]):
        await memory.store.finish_turn(await memory.store.begin_turn("race", line, message_id=f"m{n}"), "ok")
    work = await memory.store.summary_work("race")
    with jobs_use(memory):
        await asyncio.gather(*(summarize_session(memory_settings.tenant, "race", "ada", 0, memory) for _ in range(4)))
    info = await memory.store.info("race")
    assert info.summary_upto == work.target
    assert info.summary is not None and info.summary.count("my name is Ada Lovelace") == 1
    keys = [f.key for f in await memory.facts.list_facts(memory_settings.tenant, user_id="ada")]
    assert len(keys) == len(set(keys)) == 4  # each fact once, however many workers ran the step


async def test_a_step_whose_messages_were_all_removed_still_moves_the_watermark(
    memory: Memory, memory_settings: Settings
) -> None:
    await memory.store.append_many("edited", [("user", f"line {n}") for n in range(7)])
    for seq in (1, 2, 3):  # everything that has left the 4-message window
        await memory.store.remove("edited", seq)
    with jobs_use(memory):
        await summarize_session(memory_settings.tenant, "edited", "ada", 0, memory)
    info = await memory.store.info("edited")
    assert (info.summary_upto, info.summary) == (3, None)  # nothing to fold, yet the step is not due again
    assert await memory.facts.list_facts(memory_settings.tenant, user_id="ada") == []


async def test_hundreds_of_summary_steps_enqueued_at_once_all_land(memory: Memory, memory_settings: Settings) -> None:
    # pydocket's pool kept redis-py's default of 100 connections and refused the 101st enqueue
    async with memory_docket(memory_settings, memory.store) as docket:
        sent = await asyncio.gather(
            *(enqueue_summary(docket, memory_settings.tenant, f"s{n}", "ada", 0, 0) for n in range(300)),
            return_exceptions=True,
        )
        assert [e for e in sent if isinstance(e, BaseException)] == []
        assert (await docket.snapshot()).total_tasks == 300  # no worker runs here: all still queued


async def test_a_500_turn_conversation_loses_nothing(memory_settings: Settings) -> None:
    settings = memory_settings.model_copy(update={"max_messages": 50, "window_messages": 20, "summary_every": 10})
    async with AsyncExitStack() as stack:
        store = await open_store(settings=settings)
        stack.push_async_callback(store.aclose)
        memory = await stack.enter_async_context(open_memory(settings, store, OfflineModel()))
        docket = await stack.enter_async_context(memory_docket(settings, store))
        await stack.enter_async_context(serving_jobs(settings, docket, memory))
        # no recall here: this is about the short-term state and the summaries keeping pace
        chat = Chat(store, memory.model, system_prompt="test", schedule_summary=SummaryScheduler(docket))
        for n in range(500):
            await chat.turn("long", f"message {n}: I like topic {n}", message_id=f"q{n}", user_id="ada")
        await chat.drain()
        history = await chat.store.history("long")
        info = await chat.store.info("long")
    held = {m.seq for m in history}
    # every message is hot, archived awaiting its summary, or covered by the summary
    assert all(seq <= info.summary_upto or seq in held for seq in range(1, info.last_seq + 1))
    assert info.last_seq == 1000 and info.hot == 50 and info.summary_upto > 0


async def test_a_worker_killed_mid_job_means_a_retry_and_no_loss(
    memory: Memory,
    memory_settings: Settings,
    chat: Chat,
    standin: Any,
    redis_url: str,
    database_url: str,
    tmp_path: Any,
) -> None:
    await talk(chat, "killed", [*FACTFUL, "x", "y"])
    standin.stall(30)  # the worker's model call hangs: the job is mid-way when the worker dies
    env = {
        **os.environ,
        "TURNSTATE_REDIS_URL": redis_url,
        "TURNSTATE_DATABASE_URL": database_url,
        "TURNSTATE_KEY_PREFIX": memory_settings.key_prefix,
        "TURNSTATE_TENANT": memory_settings.tenant,
        "TURNSTATE_DATA_DIR": str(tmp_path),
        "TURNSTATE_WINDOW_MESSAGES": "4",
        "TURNSTATE_MAX_MESSAGES": "6",
        "OPENAI_BASE_URL": standin.base_url,
        "OPENAI_API_KEY": "sk-x",
        "TURNSTATE_WORKER_REDELIVERY_SECONDS": "1",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "turnstate", "worker", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:

        async def model_called() -> bool:
            return len(standin.requests) > 0

        await wait_until(model_called, within=30)
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    assert (await memory.store.info("killed")).summary_upto == 0  # nothing committed by the dead worker
    standin.reset()
    await asyncio.sleep(1.5)  # past the redelivery timeout of the dead worker's claim
    await run_worker(memory_settings, until_finished=True)
    info = await memory.store.info("killed")
    assert info.summary_upto > 0 and info.summary is not None


async def test_a_lost_enqueue_is_noticed_at_a_later_turn(memory: Memory, memory_settings: Settings) -> None:
    forgetful = Chat(memory.store, memory.model, system_prompt="test")  # every enqueue is "lost"
    for n, line in enumerate([*FACTFUL, "a", "b"]):
        await forgetful.turn("lost", line, message_id=f"m{n}", user_id="ada")
    assert (await memory.store.info("lost")).summary_upto == 0
    async with memory_docket(memory_settings, memory.store) as docket:
        scheduling = Chat(memory.store, memory.model, system_prompt="test", schedule_summary=SummaryScheduler(docket))
        assert (await scheduling.turn("lost", "one more", user_id="ada")).turn.summary_due
        await scheduling.drain()
    await run_worker(memory_settings, until_finished=True)
    assert (await memory.store.info("lost")).summary_upto > 0


async def test_resuming_an_older_session_does_not_restore_a_replaced_fact(
    chat: Chat, memory: Memory, memory_settings: Settings
) -> None:
    async def say(session: str, lines: list[str], first: int = 0) -> None:
        for n, line in enumerate(lines, first):
            await chat.turn(session, line, message_id=f"{session}-{n}", user_id="ada")
        await chat.drain()

    await say("older", ["Hi!", "I live in Lisbon."])  # still inside the 4-message window when Ada leaves
    await say("newer", ["I've moved to Porto.", "ok", "ok", "ok"])
    await run_worker(memory_settings, until_finished=True)
    [city] = [f for f in await memory.facts.list_facts(memory_settings.tenant, "ada") if f.key == "user.location"]
    assert "Porto" in city.text
    await say("older", ["Back again.", "ok", "ok"], first=2)  # Lisbon leaves the window now, days after Porto
    await run_worker(memory_settings, until_finished=True)
    [city] = [f for f in await memory.facts.list_facts(memory_settings.tenant, "ada") if f.key == "user.location"]
    assert "Porto" in city.text


async def test_a_step_that_the_last_reply_makes_due_is_scheduled(memory: Memory, memory_settings: Settings) -> None:
    # A window of 4 and a step every 2: the third reply is the second message outside the window.
    # begin_turn never sees that step due; if nothing scheduled it, a session that goes quiet then
    # would keep those messages unsummarised for good.
    async with memory_docket(memory_settings, memory.store) as docket:
        chat = Chat(memory.store, memory.model, system_prompt="test", schedule_summary=SummaryScheduler(docket))
        results = [await chat.turn("quiet", f"line {n}", message_id=f"m{n}", user_id="ada") for n in range(3)]
        await chat.drain()
    assert not any(r.turn.summary_due for r in results)
    await run_worker(memory_settings, until_finished=True)
    assert (await memory.store.info("quiet")).summary_upto == 2


async def test_a_job_naming_an_older_watermark_still_folds_what_has_left_the_window(
    memory: Memory, memory_settings: Settings
) -> None:
    # A turn that began before a commit and finished after it names the watermark it saw at its start.
    async def turns(first: int, count: int) -> None:
        for n in range(first, first + count):
            await memory.store.finish_turn(
                await memory.store.begin_turn("stale", f"line {n}", message_id=f"m{n}"), "ok"
            )

    await turns(0, 4)
    with jobs_use(memory):
        await summarize_session(memory_settings.tenant, "stale", "ada", 0, memory)
        first = (await memory.store.info("stale")).summary_upto
        await turns(4, 4)
        await summarize_session(memory_settings.tenant, "stale", "ada", 0, memory)
    info = await memory.store.info("stale")
    assert 0 < first < info.summary_upto == info.last_seq - memory_settings.window_messages


def test_a_failing_summary_step_is_retried_for_about_an_hour() -> None:
    # an outage of PostgreSQL, the embedder or the model shorter than this costs no summary step
    delays = [min(SUMMARY_RETRY.delay * 2**n, SUMMARY_RETRY.maximum_delay) for n in range(SUMMARY_RETRY.attempts - 1)]
    assert 50 * 60 <= sum(delays, timedelta()).total_seconds() <= 70 * 60
