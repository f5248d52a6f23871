"""The service bench, run small against a real service process: its structure and that every turn succeeded.

Never its timings: they depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import math

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from turnstate.bench.service import Tally, TurnFailed, done_event, run_service_bench
from turnstate.bench.service_report import render_markdown
from turnstate.cli import app


async def test_service_bench_measures_every_variant_and_level_with_no_failed_turn(
    redis_url: str, key_prefix: str, client: aioredis.Redis
) -> None:
    result = await run_service_bench(
        redis_url, turns=3, blocks=2, clients=(1, 2), seconds=60, max_turns=4, warmup=1, key_prefix=key_prefix
    )
    for timing in (result.library, result.service, result.streaming, result.inside):
        assert (timing.turns, timing.failures, timing.first_failure) == (6, 0, None)
        assert 0 < timing.p50_ms <= timing.p99_ms
    for timing in (result.library, result.service, result.streaming):
        assert timing.cpu.client > 0 and timing.cpu.service is not None and timing.cpu.server is not None
    # Bounded by turns, not time: every client sent exactly its turns, and all were answered.
    assert [(load.clients, load.timing.turns, load.timing.failures) for load in result.loads] == [(1, 4, 0), (2, 8, 0)]
    for load in result.loads:
        assert load.seconds > 0 and load.turns_per_second > 0
        assert load.timing.cpu.client > 0 and load.timing.cpu.service is not None and load.timing.cpu.server is not None
    assert result.failures == 0
    assert math.isfinite(result.overhead_p50_ms) and result.server and result.machine
    table = render_markdown(result)
    assert "| library: `Chat.turn` in-process | 6 | 0 |" in table and "\n| 2 | 8 | 0 |" in table
    assert "failed**" not in table and "one httpx AsyncClient, its pool shared by all" in table
    assert [key async for key in client.scan_iter(f"{key_prefix}:*")] == []  # it cleaned up after itself


async def test_a_failed_turn_is_counted_not_timed_warm_up_included() -> None:
    tally = Tally()

    async def ok() -> int:
        return 1_000

    async def failing() -> int:
        return done_event('event: turn\ndata: {}\n\nevent: error\ndata: {"status": 502}\n\n')

    await tally.time(ok)
    await tally.time(failing)
    await tally.time(ok, timed=False)  # a warm-up turn: not timed, but its failure would count
    await tally.time(failing, timed=False)
    timing = tally.timing()
    assert (timing.turns, timing.failures) == (1, 2) and tally.inside == [1_000]
    assert timing.first_failure is not None and timing.first_failure.startswith("TurnFailed: the stream ended with")
    with pytest.raises(TurnFailed):
        done_event("")


def test_service_bench_runs_from_the_cli_with_a_client_per_session(redis_url: str) -> None:
    args = ["--redis-url", redis_url, "--turns", "2", "--blocks", "1", "--clients", "1,2", "--max-turns", "2"]
    result = CliRunner().invoke(app, ["bench", "service", *args, "--client-per-session"])
    assert result.exit_code == 0, result.stdout
    assert "service - library, p50" in result.stdout and "an httpx AsyncClient per client" in result.stdout
    assert "\n| 2 | 4 | 0 |" in result.stdout
