"""The core latency bench, run small: its structure and the commands each turn sends, never its timings."""

from __future__ import annotations

import redis.asyncio as aioredis

from turnstate.bench.core import render_markdown, run_core_bench
from turnstate.bench.workloads import MESSAGE_BYTES, text


def test_bench_text_has_the_exact_size_and_varies() -> None:
    assert {len(text(n).encode()) for n in range(50)} == {MESSAGE_BYTES}
    assert len({text(n) for n in range(16)}) == 16


async def test_core_bench_measures_every_variant_and_counts_two_evalsha_per_turn(
    redis_url: str, key_prefix: str, client: aioredis.Redis
) -> None:
    result = await run_core_bench(
        redis_url, turns=3, blocks=2, short_history=30, long_history=80, warmup=2, key_prefix=key_prefix
    )
    assert [v.name for v in result.variants] == ["bare", "turnstate", "turnstate-80"]
    assert [v.history for v in result.variants] == [30, 30, 80]
    for v in result.variants:
        assert v.samples == 6
        assert 0 < v.p50_us <= v.p99_us
        # One script to begin, one to finish: the whole turn is two round trips, for every variant.
        assert v.commands_per_turn == {"evalsha": 2.0}
    assert result.p50_ratio > 0 and result.p99_ratio > 0 and result.flat_ratio > 0
    table = render_markdown(result)
    assert "| turnstate-80 |" in table and "turnstate / bare, p50" in table
    assert [key async for key in client.scan_iter(f"{key_prefix}:*")] == []  # it cleaned up after itself
