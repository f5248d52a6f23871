"""The regression checks and the bill, on figures made up to sit either side of each line."""

from __future__ import annotations

from turnstate.bench.meter import Wire
from turnstate.bench.results import Measurement, checks, costs
from turnstate.bench.runner import Latency, summarise

LATENCY = Latency(samples=1, p50_us=1.0, p99_us=1.0, p999_us=None, mean_us=1.0, cpu_us=1.0)


def cell(pattern: str, history: int, *, trips: float = 2, kb: float = 12.0, sent: float | None = 2) -> Measurement:
    wire = Wire(trips, kb * 200, kb * 800, None if sent is None else {"evalsha": sent}, {"evalsha": 2, "rpush": 2})
    return Measurement(pattern, history, 0.0, 20, LATENCY, wire)


def test_checks_pass_for_two_round_trips_and_flat_bytes() -> None:
    found = checks([cell("turnstate", 50), cell("turnstate", 5000, kb=12.5), cell("json-blob", 5000, kb=900)], [])
    assert [c.passed for c in found] == [True, True]


def test_a_third_round_trip_fails_even_in_the_summary_variant() -> None:
    found = checks([cell("turnstate", 50), cell("turnstate", 500)], [cell("turnstate+summary", 50, trips=3)])
    assert [c.passed for c in found] == [False, True]
    assert "3" in found[0].detail


def test_bytes_growing_with_history_fail() -> None:
    found = checks([cell("turnstate", 50), cell("turnstate", 500, kb=14)], [])
    assert [c.passed for c in found] == [True, False]
    assert "500: 14000" in found[1].detail


def test_nothing_counted_is_reported_as_not_run() -> None:
    found = checks([cell("turnstate", 50)], [])
    assert [(c.ran, c.passed) for c in found] == [(True, True), (False, True)]
    assert [c.ran for c in checks([], [])] == [False, False]


def test_bill_uses_commands_sent_at_the_shortest_history() -> None:
    bill = costs([cell("list", 50, sent=3), cell("list", 500, sent=9), cell("turnstate", 50, sent=None)], 0.2)
    assert [(c.pattern, c.commands_per_1000_turns, c.dollars_per_million_turns) for c in bill] == [("list", 3000, 6.0)]


def test_p999_needs_a_thousand_samples() -> None:
    assert summarise(list(range(1, 1000)), 999_000).p999_us is None
    few = summarise(list(range(1000, 1_001_000, 1000)), 1000 * 1000)
    assert few.p999_us == 999.0 and few.p50_us == 500.0 and few.cpu_us == 1.0
