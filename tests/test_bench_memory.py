"""The memory benchmark, run tiny: every part measures something and cleans up; timings are never asserted."""

from __future__ import annotations

from typing import Any

import psycopg

from turnstate.bench.memory_bench import MemoryBenchConfig, render_markdown, run_memory_bench


async def test_the_memory_bench_runs_small(make_settings: Any, redis_url: str, database_url: str) -> None:
    settings = make_settings(
        redis_url=redis_url, database_url=database_url, window_messages=4, max_messages=8, summary_every=2
    )
    config = MemoryBenchConfig(
        sizes=(400,), per_user=50, queries=6, sessions=3, turns=8, concurrencies=(2,),
        rates=(20.0,), load_sessions=3, seconds=1.5, warmup=1.0,
    )  # fmt: skip
    result = await run_memory_bench(settings, config)

    [recall] = result.recall
    assert (recall.facts, recall.typical.facts, recall.heavy.facts) == (400, 50, 200)
    assert recall.typical.latency.samples == recall.heavy.latency.samples == 6
    assert recall.embed_and_recall.samples == 2
    assert 0 < recall.typical.latency.p50_ms <= recall.typical.latency.p99_ms
    [throughput] = result.throughput
    # 8 turns are 16 messages; all but the 4 of the window are folded, one summary per session
    assert (throughput.summaries, throughput.messages) == (3, 36) and throughput.facts > 0
    [lag] = result.lag
    assert lag.messages > 0 and lag.unfinished == 0 and lag.lag.samples == lag.messages
    assert result.machine.cpus > 0 and "pgvector" in result.machine.postgres

    report = render_markdown(result)
    assert "| 400 |" in report and "summaries/s" in report and "leaves the window" in report
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'turnstate_bench_%'")
        assert await cur.fetchone() == (0,)  # the synthetic facts' schema was dropped
