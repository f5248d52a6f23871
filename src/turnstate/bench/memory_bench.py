"""`turnstate bench memory`: recall latency at scale, summaries per second per worker, summary lag under load.

The three parts run one after another on the same servers (configured, or embedded in a temporary
directory) and are reported with the machine they ran on, including its load average before and
after: on a shared machine that is what tells a reader how much the figures can be trusted.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from turnstate.bench.backends import memory_backends, write_json
from turnstate.bench.core import server_version
from turnstate.bench.eval_data import load_eval_data
from turnstate.bench.memory_recall import K, RecallScale, UserRecall, recall_at_scale
from turnstate.bench.memory_workers import Lag, Throughput, summary_lag, summary_throughput
from turnstate.config import Settings
from turnstate.connection import make_client
from turnstate.memory.embedder import OfflineEmbedder


@dataclass(frozen=True, slots=True)
class MemoryBenchConfig:
    sizes: tuple[int, ...] = (10_000, 100_000)  # stored facts
    per_user: int = 100  # facts of a typical user
    queries: int = 300  # timed recalls per kind of user
    sessions: int = 100  # sessions with a summary step due, for the throughput
    turns: int = 20  # turns of each
    concurrencies: tuple[int, ...] = (1, 4)  # jobs a worker runs at once
    rates: tuple[float, ...] = (5.0, 10.0)  # turns per second offered while the lag is measured
    load_sessions: int = 20
    seconds: float = 60.0  # measured period of the lag; 0 skips it
    warmup: float = 10.0


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    cpu: str
    python: str
    redis: str
    postgres: str
    load_before: tuple[float, ...]
    load_after: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class MemoryBenchResult:
    machine: Machine
    config: MemoryBenchConfig
    window_messages: int
    summary_every: int
    worker_concurrency: int  # jobs the lag's worker process runs at once
    recall: tuple[RecallScale, ...] = ()
    throughput: tuple[Throughput, ...] = ()
    lag: tuple[Lag, ...] = ()


async def run_memory_bench(settings: Settings, config: MemoryBenchConfig) -> MemoryBenchResult:
    data = load_eval_data()
    texts, questions = data.texts(), [q.text for u in data.users for q in u.questions]
    async with memory_backends(settings) as live:
        machine = await _machine(live)
        database_url = live.database_url.get_secret_value() if live.database_url else ""
        embedder = OfflineEmbedder()
        try:
            await embedder.embed_queries(["warm up"])  # the model loads on first use
            recall = [await recall_at_scale(database_url, n, embedder, questions, per_user=config.per_user,
                                            queries=config.queries) for n in config.sizes]  # fmt: skip
        finally:
            await embedder.aclose()
        throughput = [
            await summary_throughput(live, texts, sessions=config.sessions, turns=config.turns, concurrency=c)
            for c in config.concurrencies
        ]
        lag = [
            await summary_lag(
                live, texts, rate=rate, sessions=config.load_sessions, seconds=config.seconds, warmup=config.warmup
            )
            for rate in (config.rates if config.seconds > 0 else ())
        ]
    machine = dataclasses.replace(machine, load_after=os.getloadavg())
    return MemoryBenchResult(
        machine,
        config,
        settings.window_messages,
        settings.summary_every,
        settings.worker_concurrency,
        tuple(recall),
        tuple(throughput),
        tuple(lag),
    )


async def _machine(settings: Settings) -> Machine:
    """What the figures were measured on: CPUs, servers, and how busy the machine already was."""
    cpu = _cpu_model() or platform.processor() or platform.machine()
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else ""
    client = make_client(redis_url, connect_timeout=5)
    try:
        redis = await server_version(client)
    finally:
        await client.aclose()
    database_url = settings.database_url.get_secret_value() if settings.database_url else ""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT current_setting('server_version'), (SELECT coalesce(installed_version, default_version)"
            " FROM pg_available_extensions WHERE name = 'vector')"
        )
        version, vector = await cur.fetchone() or ("?", "?")
    postgres = f"PostgreSQL {version}, pgvector {vector}"
    return Machine(os.cpu_count() or 0, cpu, sys.version.split()[0], redis, postgres, os.getloadavg())


def _cpu_model() -> str | None:
    """The CPU's name as Linux reports it (a read of /proc, instant)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)


def render_markdown(result: MemoryBenchResult) -> str:
    m, c = result.machine, result.config
    lines = [
        f"{m.cpus} CPUs ({m.cpu}), {m.redis}, {m.postgres}, Python {m.python}; load average "
        f"{_loads(m.load_before)} before, {_loads(m.load_after)} after.",
    ]
    if result.recall:
        lines += [
            "",
            f"Recall: FactStore.recall, k={K}, hnsw.ef_search {result.recall[0].ef_search}; synthetic facts (random "
            f"unit vectors, COPY), half of them one heavy user's, the rest {c.per_user} to a user.",
            "",
            "| facts | COPY (s) | HNSW build (s) | recall for | its facts | p50 (ms) | p99 (ms) | HNSW scans/recall |",
            "|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for r in result.recall:
            lines += [
                _recall_row(r, "a typical user", r.typical, f"{r.load_seconds:.1f}", f"{r.index_seconds:.1f}"),
                _recall_row(r, "the heavy user", r.heavy),
                f"| {r.facts:,} | | | a typical user, question embedded first | {r.typical.facts:,} | "
                f"{r.embed_and_recall.p50_ms:.2f} | {r.embed_and_recall.p99_ms:.2f} | |",
            ]
    if result.throughput:
        lines += [
            "",
            f"Summaries per second, one worker: {c.sessions} sessions of {c.turns} turns, one step due each "
            f"(window {result.window_messages} messages, a step due every {result.summary_every}).",
            "",
            "| jobs at once | summaries | messages folded | facts stored | seconds | summaries/s | messages/s |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {t.concurrency} | {t.summaries} | {t.messages} | {t.facts} | {t.seconds:.1f} | {t.per_second:.2f} "
            f"| {t.messages / t.seconds:.1f} |"
            for t in result.throughput
        ]
    for lag in result.lag:
        lines += _lag_lines(lag, c, result.worker_concurrency)
    return "\n".join(lines)


def _recall_row(r: RecallScale, who: str, user: UserRecall, load: str = "", build: str = "") -> str:
    return (
        f"| {r.facts:,} | {load} | {build} | {who} | {user.facts:,} | {user.latency.p50_ms:.2f} | "
        f"{user.latency.p99_ms:.2f} | {user.hnsw_scans_per_recall:.2f} |"
    )


def _lag_lines(lag: Lag, c: MemoryBenchConfig, concurrency: int) -> list[str]:
    return [
        "",
        f"Lag under load: {lag.rate:g} turns/s offered over {lag.sessions} sessions ({lag.achieved:.1f} completed), "
        f"{lag.seconds:g} s measured after {c.warmup:g} s of warm-up; one worker process ({concurrency} jobs at once); "
        f"watermarks polled every "
        f"{lag.poll_ms:g} ms.",
        "",
        "| from -> to | n | p50 (s) | p99 (s) |",
        "|---|---:|---:|---:|",
        f"| a message leaves the window -> a summary covers it | {lag.messages} | {lag.lag.p50_ms / 1000:.2f} "
        f"| {lag.lag.p99_ms / 1000:.2f} |",
        f"| its step is due -> committed (the worker's queue and work) | {lag.worker_lag.samples} "
        f"| {lag.worker_lag.p50_ms / 1000:.2f} | {lag.worker_lag.p99_ms / 1000:.2f} |",
        "",
        f"Messages of the measured period still unsummarised when the bench stopped waiting: {lag.unfinished}.",
    ]


def _loads(values: tuple[float, ...]) -> str:
    return " / ".join(f"{v:.2f}" for v in values) or "?"


async def bench_report(settings: Settings, config: MemoryBenchConfig, json_path: Path | None = None) -> str:
    """`turnstate bench memory`: run, optionally write JSON, return the markdown."""
    result = await run_memory_bench(settings, config)
    if json_path is not None:
        write_json(json_path, result)
    return render_markdown(result)
