"""The many-process load test, run small: every invariant held, and a checker that does find broken sessions.

Never its timings: they depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr
from typer.testing import CliRunner

from turnstate import Settings, Store
from turnstate.bench.scale import ScaleConfig, plan, run_scale
from turnstate.bench.scale_check import Answer, Sent, check_sessions
from turnstate.cli import app
from turnstate.keys import session_keys

SMALL = ScaleConfig(
    sessions=30, turns=6, services=2, workers=2, concurrency=30, races=0.3, duplicates=0.1, retries=0.1,
    window_messages=4, max_messages=6, summary_every=2, drain_seconds=60,
)  # fmt: skip


def test_the_small_plan_has_races_duplicates_retries_and_both_kinds_of_request() -> None:
    steps = [step for n in range(SMALL.sessions) for step in plan(SMALL, n)]
    ids = [[r.message_id for r in step] for step in steps]
    assert any(len(set(step)) > 1 for step in ids)  # a race: turns of one session at once
    assert any(len(set(step)) < len(step) for step in ids)  # a message sent twice at once
    assert sum(len(step) == 1 and step[0] in seen for step, seen in _after(ids)) > 0  # a retry, once answered
    assert {r.stream for step in steps for r in step} == {True, False}
    for n in range(SMALL.sessions):  # each request goes to another process than the one before it
        services = [r.service for step in plan(SMALL, n) for r in step]
        assert all(a != b for a, b in itertools.pairwise(services))


def _after(ids: list[list[str]]) -> list[tuple[list[str], set[str]]]:
    """Each step with the ids sent by the steps before it (of any session: ids repeat per session, fine here)."""
    out, seen = [], set[str]()
    for step in ids:
        if step == ["m0"]:
            seen = set()  # a new session's plan starts
        out.append((step, set(seen)))
        seen |= set(step)
    return out


async def test_two_services_and_two_workers_keep_every_invariant(
    redis_url: str, database_url: str, client: aioredis.Redis
) -> None:
    result = await run_scale(Settings(redis_url=SecretStr(redis_url), database_url=SecretStr(database_url)), SMALL)
    check = result.check
    assert check.problems == [] and check.violations == 0 and result.ok
    assert result.latency.failures == 0, result.latency.first_failure
    assert (check.sessions, check.turns, check.acknowledged) == (30, 180, 180)
    assert check.stored == 360 and check.retried > 0 and result.requests > 180
    assert (
        check.folded > 0 and check.summaries > 0 and result.summary_jobs > 0
    )  # workers folded messages, which left the store
    assert [key async for key in client.scan_iter(f"{result.prefix}*")] == []  # it cleaned up after itself


async def _turns(store: Store, session: str, count: int) -> list[Sent]:
    """`count` turns through the library, as the client of a load would record them."""
    sent = []
    for n in range(count):
        content = f"question {n}"
        turn = await store.begin_turn(session, content, message_id=f"m{n}")
        reply = await store.finish_turn(turn, f"answer {n}")
        answer = Answer(turn.seq, turn.resumed, reply.seq, reply.id, reply.reply_to, reply.content)
        sent.append(Sent(session, f"m{n}", content, answer))
    return sent


async def test_the_checker_reports_sessions_broken_behind_its_back(make_store: Any, client: aioredis.Redis) -> None:
    store: Store = make_store(window_messages=4, max_messages=6, summary_every=2)
    sessions = ["intact", "lost", "doubled", "swapped", "retried", "streamed", "unsummarised"]
    sent = [s for name in sessions for s in await _turns(store, name, 4)]
    clean = await check_sessions(store, sent, summaries_drained=False)
    assert (clean.violations, clean.problems, clean.acknowledged) == (0, [], 28)

    def msgs(session: str) -> str:
        return session_keys(store.settings.key_prefix, store.settings.tenant, session).msgs

    async def held(session: str, index: int) -> str:
        raw = (await client.lrange(msgs(session), index, index))[0]
        return raw.decode() if isinstance(raw, bytes) else raw

    await client.lrem(msgs("lost"), 1, await held("lost", 0))  # a message vanishes
    await client.rpush(msgs("doubled"), await held("doubled", -1))  # one is stored twice
    first, second = await held("swapped", 0), await held("swapped", 1)
    await client.lset(msgs("swapped"), 0, second)
    await client.lset(msgs("swapped"), 1, first)
    told = next(s for s in sent if s.session == "retried")
    assert told.answer is not None
    other = Answer(told.answer.seq, True, told.answer.reply_seq, told.answer.reply_id, told.answer.seq, "another")
    sent.append(Sent("retried", told.message_id, told.content, other))  # a retry answered differently
    streamed = next(n for n, s in enumerate(sent) if s.session == "streamed")
    answer = dataclasses.replace(sent[streamed].answer, streamed="not the reply")  # type: ignore[type-var]
    sent[streamed] = dataclasses.replace(sent[streamed], answer=answer)  # its stream showed another text

    broken = await check_sessions(store, sent)  # no worker ran: every session has a step due
    assert broken.lost >= 1 and any(p.startswith("lost:") for p in broken.problems)
    assert broken.duplicated >= 1 and any(p.startswith("doubled:") for p in broken.problems)
    assert broken.misordered >= 1 and any(p.startswith("swapped:") for p in broken.problems)
    assert broken.retry_mismatches == 1 and any(p.startswith("retried:") for p in broken.problems)
    assert any(p.startswith("streamed: the deltas") for p in broken.problems)
    assert broken.summary_behind >= 2 and any(p.startswith("unsummarised: a summary step") for p in broken.problems)
    assert not any(p.startswith("intact:") and "summary" not in p for p in broken.problems)


def test_the_scale_bench_runs_from_the_cli(redis_url: str, database_url: str, tmp_path: Path) -> None:
    args = ["--redis-url", redis_url, "--sessions", "4", "--turns", "2", "--services", "1", "--workers", "1"]
    result = CliRunner().invoke(
        app,
        ["bench", "scale", *args, "--json", str(tmp_path / "scale.json")],
        env={"TURNSTATE_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.stdout
    assert "| turns acknowledged | 8 |" in result.stdout and "| lost | 0 |" in result.stdout
    saved = json.loads((tmp_path / "scale.json").read_text())
    assert (saved["ok"], saved["violations"], saved["check"]["acknowledged"]) == (True, 0, 8)
