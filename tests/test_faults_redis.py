"""The Redis-protocol server failing under running turns: crashes, restarts, dropped connections, flushed scripts.

Each test runs turns of several sessions at once (two or three callers per session, so some wait
in the queue) on a private Valkey, strikes while turns are in flight, and then checks every
session's history: whatever was acknowledged is there at its seq, nothing twice, each question
followed by its one answer. Callers retry with the same message id after a turnstate error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.fault_proxy import LosingProxy
from tests.faults import CrashableValkey, Fault, Tally, careful_turn, check_history
from turnstate import Store, Turn
from turnstate.connection import RETRIES, make_client, redacted
from turnstate.errors import ServerUnavailable
from turnstate.store import open_store

SESSIONS = 6
CALLERS = 2  # per session: one turn runs, the other waits in the queue
TURNS = 8  # per session
HANG_GUARD_SECONDS = 60.0


def store_on(url: str, make_settings: Any, *, retries: int = RETRIES) -> Store:
    settings = make_settings(lease_seconds=30.0, queue_wait_seconds=30.0)
    return Store(make_client(url, connect_timeout=2, retries=retries), settings, address=redacted(url), url=url)


@pytest.fixture
async def admin() -> AsyncIterator[Callable[[str], aioredis.Redis]]:
    """Second clients, for the commands that do the damage (and reads that check it)."""
    opened: list[aioredis.Redis] = []

    def make(url: str) -> aioredis.Redis:
        opened.append(make_client(url, connect_timeout=2, retries=0))
        return opened[-1]

    yield make
    for c in opened:
        await c.aclose()


async def run_turns(store: Store, tally: Tally, during: Fault, generation: Callable[[], int]) -> None:
    """SESSIONS x TURNS turns, CALLERS callers per session, all at once; a hang fails the test."""

    async def caller(session: str, lane: int) -> None:
        for n in range(lane, TURNS, CALLERS):
            await careful_turn(store, session, n, tally, during=during, generation=generation)

    async with asyncio.timeout(HANG_GUARD_SECONDS):
        await asyncio.gather(*(caller(f"s{s}", lane) for s in range(SESSIONS) for lane in range(CALLERS)))


async def lost_and_duplicated(store: Store, tally: Tally, *, generation: int = 0) -> tuple[int, int]:
    """Acknowledged messages (of `generation` or later) missing from their seq; messages stored twice.

    Every session's history must be internally consistent (check_history) for this to return.
    """
    held: dict[str, int] = {}
    duplicated = 0
    for s in range(SESSIONS):
        history = await store.history(f"s{s}")
        check_history(history)  # raises on a gap, a duplicate or a question without its one answer
        duplicated += len(history) - len({m.id for m in history})
        held.update({m.id: m.seq for m in history})
    lost = sum(1 for mid, (seq, gen) in tally.acked.items() if gen >= generation and held.get(mid) != seq)
    return lost, duplicated


def report(name: str, tally: Tally, lost: int, duplicated: int, **more: object) -> None:
    """The figures for docs/reliability.md, printed (pytest -s shows them)."""
    extra = " ".join(f"{k}={v}" for k, v in more.items())
    print(
        f"\nFAULT {name}: turns={tally.turns} acknowledged={len(tally.acked)} answered={tally.answered} "
        f"lost={lost} duplicated={duplicated} errors={dict(tally.errors)} {extra}"
    )


@pytest.mark.parametrize("retries", [0, RETRIES], ids=["no-retries", "default-retries"])
async def test_a_crash_with_appendfsync_always_loses_no_acknowledged_message(
    tmp_path: Path, make_settings: Any, admin: Any, retries: int
) -> None:
    server = CrashableValkey(tmp_path / "valkey", persistent=True, extra_args=("--appendfsync", "always"))
    store = store_on(server.url, make_settings, retries=retries)
    tally = Tally()
    in_flight_at_crash = 0

    async def crash_mid_run(session: str, n: int) -> None:
        nonlocal in_flight_at_crash
        if (session, n) != ("s0", 3):
            return
        in_flight_at_crash = sum(1 for m in tally.acked if not m.endswith(":reply") and f"{m}:reply" not in tally.acked)
        server.crash()
        if retries == 0:
            async with asyncio.timeout(10):  # other callers hit the dead server and get a clear error
                while not tally.errors:  # noqa: ASYNC110 - other tasks' progress, no event to wait on
                    await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(0.3)  # the outage lasts a while; the store's retries ride through it
        await asyncio.to_thread(server.restart)

    try:
        assert (await admin(server.url).config_get("appendfsync"))["appendfsync"] == "always"
        await run_turns(store, tally, crash_mid_run, lambda: server.generation)
        lost, duplicated = await lost_and_duplicated(store, tally)
    finally:
        await store.aclose()
        server.stop()
    report(f"crash+restart, AOF always, retries={retries}", tally, lost, duplicated, in_flight=in_flight_at_crash)
    assert server.generation == 1 and in_flight_at_crash >= 1
    assert len(tally.acked) == 2 * SESSIONS * TURNS  # every turn completed, each question and answer acknowledged
    assert (lost, duplicated) == (0, 0)
    assert set(tally.errors) <= {"ServerUnavailable"}
    assert all(redacted(server.url) in m for m in tally.messages)  # the error names the server
    if retries == 0:
        assert tally.errors["ServerUnavailable"] > 0


async def test_a_crash_without_persistence_gives_clear_errors_and_no_corruption(
    tmp_path: Path, make_settings: Any
) -> None:
    server = CrashableValkey(tmp_path / "valkey", persistent=False)
    store = store_on(server.url, make_settings, retries=0)
    tally = Tally()

    async def crash_mid_run(session: str, n: int) -> None:
        if (session, n) == ("s0", 3) and server.generation == 0:  # the turn is begun again after the crash
            server.crash()
            async with asyncio.timeout(10):
                while not tally.errors:  # noqa: ASYNC110 - other tasks' progress, no event to wait on
                    await asyncio.sleep(0.01)
            await asyncio.to_thread(server.restart)

    try:
        await run_turns(store, tally, crash_mid_run, lambda: server.generation)
        lost_since, duplicated = await lost_and_duplicated(store, tally, generation=1)
        lost_before, _ = await lost_and_duplicated(store, tally)
        fresh = await store.begin_turn("after", "a new session", message_id="n-1")
        await store.finish_turn(fresh, "fine")
        assert [m.id for m in await store.history("after")] == ["n-1", "n-1:reply"]
    finally:
        await store.aclose()
        server.stop()
    report("crash+restart, no persistence", tally, lost_before, duplicated, lost_since_restart=lost_since)
    assert len(tally.acked) == 2 * SESSIONS * TURNS
    assert (lost_since, duplicated) == (0, 0)  # all that was acknowledged after the restart is kept
    assert lost_before > 0  # and what came before is gone, as documented: there was no persistence
    # Callers saw the outage, then turns whose session the server had lost, as turnstate errors.
    assert set(tally.errors) <= {"ServerUnavailable", "TurnGone"} and tally.errors["ServerUnavailable"] > 0
    assert all("cannot reach" in m or "no longer holds" in m for m in tally.messages)


async def test_connections_killed_under_running_turns_are_retried_safely(
    tmp_path: Path, make_settings: Any, admin: Any
) -> None:
    server = CrashableValkey(tmp_path / "valkey", persistent=False)
    store = store_on(server.url, make_settings)
    killer = admin(server.url)
    tally = Tally()
    killed: list[int] = []
    one_at_a_time = asyncio.Lock()  # two kills at once would kill each other's connection

    async def kill_connections(session: str, n: int) -> None:
        if n % 3 == 1:  # turns in flight: this one, and every other session's that is not between steps
            async with one_at_a_time:
                killed.append(int(await killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")))

    try:
        await run_turns(store, tally, kill_connections, lambda: 0)
        lost, duplicated = await lost_and_duplicated(store, tally)
    finally:
        await store.aclose()
        server.stop()
    report("CLIENT KILL TYPE normal", tally, lost, duplicated, kills=len(killed), connections_killed=sum(killed))
    assert sum(killed) >= len(killed) > 0
    assert len(tally.acked) == 2 * SESSIONS * TURNS
    assert (lost, duplicated) == (0, 0)
    assert not tally.errors  # the store's retries took every dropped connection


@pytest.mark.parametrize("step", ["begin_turn", "finish_turn", "append"])
@pytest.mark.parametrize("retries", [0, RETRIES], ids=["no-retries", "default-retries"])
async def test_a_script_whose_reply_was_lost_is_retried_safely(
    tmp_path: Path, make_settings: Any, step: str, retries: int
) -> None:
    """The request ran on the server and the connection died before its answer came back.

    The same request again (redis-py's retry, or the caller's) must neither store a second copy
    nor wait for the turn's own lease (queue_wait_seconds=0 makes such a wait fail at once).
    """
    server = CrashableValkey(tmp_path / "valkey", persistent=False)
    try:
        async with LosingProxy(server.server.port or 0) as proxy:
            settings = make_settings(lease_seconds=30.0, queue_wait_seconds=0.0)
            store = Store(make_client(proxy.url, connect_timeout=2, retries=retries), settings)
            try:
                await store.finish_turn(await store.begin_turn("s", "warm-up", message_id="w"), "scripts cached")
                turn = None
                if step != "begin_turn":
                    turn = await store.begin_turn("s", "question", message_id="q")
                proxy.lose_reply_to(b"EVALSHA")

                async def once() -> object:
                    if step == "begin_turn":
                        return await store.begin_turn("s", "question", message_id="q")
                    assert turn is not None
                    if step == "finish_turn":
                        return await store.finish_turn(turn, "answer")
                    return await store.append("s", "tool", "a tool result", message_id="t", turn=turn)

                if retries == 0:
                    with pytest.raises(ServerUnavailable):
                        await once()
                await once()  # redis-py's own retry, or the caller's
                if step == "begin_turn":
                    again = await once()  # and once more, as a client retrying its request would
                    assert isinstance(again, Turn) and again.resumed
                ids = [m.id for m in await store.history("s")]
            finally:
                await store.aclose()
    finally:
        server.stop()
    assert proxy.lost == 1
    expected = {"begin_turn": ["q"], "finish_turn": ["q", "q:reply"], "append": ["q", "t"]}[step]
    assert ids == ["w", "w:reply", *expected]


async def test_flushed_scripts_are_loaded_again_between_and_during_turns(
    tmp_path: Path, make_settings: Any, admin: Any
) -> None:
    server = CrashableValkey(tmp_path / "valkey", persistent=False)
    store = store_on(server.url, make_settings)
    flusher = admin(server.url)
    tally = Tally()
    flushes = 0

    async def flush_scripts(session: str, n: int) -> None:
        nonlocal flushes
        if n % 2 == 0:  # between this turn's begin and finish; other turns are anywhere
            await flusher.script_flush()
            flushes += 1

    try:
        await flusher.script_flush()  # before any turn, too
        await run_turns(store, tally, flush_scripts, lambda: 0)
        lost, duplicated = await lost_and_duplicated(store, tally)
        noscript = (await flusher.info("errorstats")).get("errorstat_NOSCRIPT", {}).get("count", 0)
    finally:
        await store.aclose()
        server.stop()
    report("SCRIPT FLUSH", tally, lost, duplicated, flushes=flushes + 1, noscript_fallbacks=noscript)
    assert noscript > 0  # the EVAL fallback did run
    assert len(tally.acked) == 2 * SESSIONS * TURNS
    assert (lost, duplicated) == (0, 0)
    assert not tally.errors


@pytest.mark.parametrize("retries", [0, 1])
async def test_open_store_takes_its_retries_from_the_settings(tmp_path: Path, make_settings: Any, retries: int) -> None:
    server = CrashableValkey(tmp_path / "valkey", persistent=False)
    try:
        async with LosingProxy(server.server.port or 0) as proxy:
            store = await open_store(proxy.url, settings=make_settings(redis_retries=retries))
            try:
                proxy.lose_reply_to(b"PING")
                if retries:
                    assert await store.ping()
                else:
                    with pytest.raises(ServerUnavailable):
                        await store.ping()
            finally:
                await store.aclose()
    finally:
        server.stop()
    assert proxy.lost == 1
