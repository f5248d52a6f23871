"""Many turns at once: throughput across sessions, and races within one session.

Throughput: `workers` concurrent clients (one event loop, one connection pool), each holding
conversations of `conversation_turns` turns one after another on fresh sessions, for a fixed
time. Every conversation starts empty, so every pattern sees the same history lengths (0 to
2 x `conversation_turns` messages), and the JSON blob is not penalised by a history it grew
during the run itself.

Race: `race.run_race` on one session, repeated, its damage summed per pattern.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from turnstate.bench.core import percentile
from turnstate.bench.results import Race, Throughput
from turnstate.bench.workloads import Texts
from turnstate.patterns import ChatPattern
from turnstate.race import run_race


async def _turn(pattern: ChatPattern, session: str, n: int, texts: Texts) -> None:
    handle = await pattern.begin(session, texts.user(n), f"m{n}")
    await pattern.finish(handle, texts.reply(n))


async def drive(
    pattern: ChatPattern,
    workers: int,
    seconds: float,
    texts: Texts,
    session_prefix: str,
    samples: list[int],
    *,
    conversation_turns: int = 25,
) -> float:
    """Keep `workers` sessions in flight for `seconds`; append each turn's time to `samples`; return the time taken."""
    # Warm up: every worker's connection is opened (and every script cached) before the clock starts.
    await asyncio.gather(*(_turn(pattern, f"{session_prefix}-w{w}-warm", 0, texts) for w in range(workers)))
    stop = time.perf_counter_ns() + int(seconds * 1e9)

    async def worker(w: int) -> None:
        conversation = 0
        while True:
            session = f"{session_prefix}-w{w}-c{conversation}"
            for n in range(conversation_turns):
                start = time.perf_counter_ns()
                if start >= stop:
                    return
                await _turn(pattern, session, n, texts)
                samples.append(time.perf_counter_ns() - start)
            conversation += 1

    began = time.perf_counter_ns()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return (time.perf_counter_ns() - began) / 1e9


def throughput(name: str, workers: int, samples: list[int], seconds: float) -> Throughput:
    """Turns per second with `workers` sessions in flight at once, and their latency under that load."""
    ordered = sorted(samples)
    return Throughput(
        pattern=name,
        sessions=workers,
        turns=len(ordered),
        seconds=seconds,
        turns_per_second=len(ordered) / seconds,
        p50_us=percentile(ordered, 0.50) / 1000,
        p99_us=percentile(ordered, 0.99) / 1000,
    )


async def races(
    patterns: Sequence[ChatPattern], session_prefix: str, *, rounds: int, turns: int, think_seconds: float
) -> list[Race]:
    """`rounds` races of `turns` concurrent turns on one session, per pattern."""
    out = []
    for pattern in patterns:
        lost = duplicated = misordered = stored = shared = 0
        for r in range(rounds):
            session = f"{session_prefix}-{pattern.name}-{r}"
            report = await run_race(pattern, session, turns=turns, think_seconds=think_seconds)
            await pattern.delete(session)
            lost += report.result.lost
            duplicated += report.result.duplicated
            misordered += report.result.misordered
            stored += report.stored
            shared += report.shared_snapshots
        out.append(Race(pattern.name, rounds, turns, lost, duplicated, misordered, stored, shared))
    return out
