"""`turnstate bench run --short`, as CI runs it: the regression checks and the report's structure.

Only counts are asserted (round trips, commands, bytes, race damage), never a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from typer.testing import CliRunner

from turnstate.cli import app

PATTERNS = ["json-blob", "list", "bounded", "atomic-lua", "turnstate"]
runner = CliRunner()


def by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def test_short_bench_passes_its_checks_and_writes_the_report(
    redis_url: str, database_url: str, key_prefix: str, tmp_path: Path
) -> None:
    args = [
        "bench",
        "run",
        "--short",
        "--redis-url",
        redis_url,
        "--database-url",
        database_url,
        "--report-dir",
        str(tmp_path),
        "--key-prefix",
        key_prefix,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stdout
    assert "Regression checks" in result.stdout and "FAIL" not in result.stdout
    files = {p.name for p in tmp_path.iterdir()}
    assert {"bench.json", "bench.md", "latency-vs-history.png", "latency-vs-rtt.png", "race.png"} <= files
    report = json.loads((tmp_path / "bench.json").read_text())
    assert set(report) >= {"config", "machine", "latency", "rtt", "throughput", "race", "cost", "memory", "checks"}
    assert [(c["ran"], c["passed"]) for c in report["checks"]] == [(True, True), (True, True)]
    assert report["machine"]["cpus"] >= 1 and report["machine"]["server"]

    latency = by(report["latency"], "pattern", "history")
    assert set(latency) == {(p, h) for p in PATTERNS for h in (50, 500)}
    wire = {key: cell["wire"] for key, cell in latency.items()}
    for h in (50, 500):
        ours = wire["turnstate", h]
        # Two round trips, two EVALSHA sent; the server runs many more commands inside the scripts.
        assert ours["round_trips"] == 2 and ours["sent"] == {"evalsha": 2.0}
        assert ours["executed_total"] > 2
        assert wire["list", h]["round_trips"] == 3
        assert wire["bounded", h]["sent"] == {"expire": 1.0, "lpush": 2.0, "lrange": 1.0, "ltrim": 1.0}
        assert latency["json-blob", h]["window"] == h + 1 and latency["turnstate", h]["window"] == 20
    assert wire["turnstate", 500]["bytes_total"] <= 1.1 * wire["turnstate", 50]["bytes_total"]
    assert wire["json-blob", 500]["bytes_total"] > 5 * wire["json-blob", 50]["bytes_total"]

    assert {(r["pattern"], r["delay_ms"]) for r in report["rtt"]} == {(p, d) for p in PATTERNS for d in (0.0, 1.0)}
    assert set(by(report["throughput"], "pattern", "sessions")) == {(p, s) for p in PATTERNS for s in (1, 8)}
    assert all(t["turns"] > 0 for t in report["throughput"])

    race = by(report["race"], "pattern")
    assert race["json-blob",]["lost"] > 0
    assert race["list",]["misordered"] > 0
    assert (race["turnstate",]["lost"], race["turnstate",]["duplicated"], race["turnstate",]["misordered"]) == (0, 0, 0)

    memory = {(m["pattern"], m["delay_ms"]): m for m in report["memory"]}
    with_summary, without = memory["turnstate+summary", 0.0]["wire"], memory["turnstate", 0.0]["wire"]
    assert with_summary["round_trips"] == without["round_trips"] == 2
    assert with_summary["bytes_total"] > without["bytes_total"]  # the summary itself comes back
    assert memory["atomic-lua+memory", 0.0]["wire"]["round_trips"] == 4

    recall = report["recall"]
    assert (recall["facts_per_user"], recall["other_facts"], recall["k"]) == (10, 200, 5)
    names = ["turnstate-chat/questions", "turnstate-chat+recall/questions"]  # --short: short messages only
    turns = by(recall["turns"], "pattern", "delay_ms")
    assert set(turns) == {(n, 0.0) for n in names}  # --short: no added round-trip time
    assert all(t["latency"]["p50_us"] > 0 and t["latency"]["samples"] > 0 for t in turns.values())
    assert all(turns[n, 0.0]["wire"]["round_trips"] == 2 for n in names)  # recall adds no Redis round trip
    variants = by(recall["variants"], "pattern")
    for n in names:
        v = variants[n,]
        assert v["turns"] > 0 and v["late_or_failed"] == 0
        if v["recall"]:  # every timed turn's prompt carried the user's facts, each recall timed
            assert v["with_facts"] == v["turns"] and v["facts_per_turn"] == 5
            assert v["embed"]["samples"] == v["query"]["samples"] == v["turns"]
            assert v["query"]["p50_ms"] > 0 and v["embed"]["p50_ms"] > 0
        else:
            assert (v["with_facts"], v["embed"], v["query"]) == (0, None, None)

    assert {c["pattern"]: c["commands_per_turn"] for c in report["cost"]}["turnstate"] == 2
    markdown = (tmp_path / "bench.md").read_text()
    assert "| turnstate |" in markdown and "| turnstate-chat+recall/questions | questions |" in markdown
    assert "turnstate chat with / without recall, p50, questions, +0 ms" in markdown
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(f"{key_prefix}:*")) == []  # it cleaned up after itself
    finally:
        client.close()
