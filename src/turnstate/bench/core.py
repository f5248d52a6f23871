"""Core latency: the data handling of one whole turn (begin + finish, no model call).

Three variants run against the same server through the same client in one run:

- `bare`: the article's atomic step written directly with redis-py (one script pushes the user
  message, trims, renews the TTL and returns the window, decoded with json; a second script
  pushes the reply, trims and renews the TTL). The least a correct-looking turn can cost.
- `turnstate`: Store.begin_turn + Store.finish_turn on a 50-message conversation.
- `turnstate-5000`: the same on a 5,000-message conversation. Its `max_messages` is set to the
  history length, so the hot list really holds 5,000 messages while it is measured (with the
  defaults it would hold 50 and archive the rest, which would prove nothing about growth).

Each variant's history is filled before timing and stays at its length: every turn adds two
messages and the cap moves two out. Variants are interleaved in blocks, the order rotating
from block to block, so drift of the machine hits all of them alike. Figures are ratios from
one run; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import math
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from turnstate.bench.commands import count_commands
from turnstate.bench.workloads import MESSAGE_BYTES, BareTurns, Texts, TurnstateTurns, Workload
from turnstate.config import Settings
from turnstate.connection import make_client, redacted
from turnstate.servers import EmbeddedPostgres, EmbeddedValkey
from turnstate.store import Store

TARGET_P50_RATIO = 1.3  # turnstate / bare, p50
TARGET_FLAT_RATIO = 1.1  # 5,000-message / 50-message conversation, p50
COUNTED_TURNS = 3


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variant's per-turn latency (microseconds) and the commands one turn sends."""

    name: str
    description: str
    history: int
    samples: int
    p50_us: float
    p99_us: float
    mean_us: float
    commands_per_turn: dict[str, float] | None  # None: the server refused MONITOR


@dataclass(frozen=True, slots=True)
class CoreBenchResult:
    """The three variants of one run, and the ratios the targets are set on."""

    bare: VariantResult
    turnstate: VariantResult
    turnstate_long: VariantResult
    turns: int
    blocks: int
    message_bytes: int
    window: int
    server: str

    @property
    def variants(self) -> tuple[VariantResult, ...]:
        return (self.bare, self.turnstate, self.turnstate_long)

    @property
    def p50_ratio(self) -> float:
        return self.turnstate.p50_us / self.bare.p50_us

    @property
    def p99_ratio(self) -> float:
        return self.turnstate.p99_us / self.bare.p99_us

    @property
    def flat_ratio(self) -> float:
        return self.turnstate_long.p50_us / self.turnstate.p50_us


def percentile(ordered: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class _Variant:
    name: str
    description: str
    history: int
    work: Workload
    samples: list[int] = field(default_factory=list)
    next_n: int = 0

    async def run(self, count: int, *, timed: bool) -> None:
        for _ in range(count):
            n, self.next_n = self.next_n, self.next_n + 1
            start = time.perf_counter_ns()
            await self.work.turn(n)
            if timed:
                self.samples.append(time.perf_counter_ns() - start)

    async def prepare(self, warmup: int, window: int) -> None:
        """Fill the history to its length, warm up, and check the variant compares like with like."""
        await self.run(self.history // 2 + warmup, timed=False)
        held = await self.work.held()
        size = await self.work.turn(self.next_n)
        self.next_n += 1
        if (held, size) != (self.history, window):
            raise RuntimeError(
                f"{self.name}: holds {held} messages, prompts with {size}; wanted {self.history}, {window}"
            )

    async def result(self, client: aioredis.Redis) -> VariantResult:
        """Summarise the timed turns, and count on the server what a few more turns send."""
        counted = await count_commands(
            client, self.work.marker, functools.partial(self.run, COUNTED_TURNS, timed=False)
        )
        ordered = sorted(self.samples)
        return VariantResult(
            name=self.name,
            description=self.description,
            history=self.history,
            samples=len(ordered),
            p50_us=percentile(ordered, 0.50) / 1000,
            p99_us=percentile(ordered, 0.99) / 1000,
            mean_us=sum(ordered) / len(ordered) / 1000,
            commands_per_turn=None if counted is None else {k: n / COUNTED_TURNS for k, n in counted.items()},
        )


@contextmanager
def bench_server(url: str | None) -> Iterator[str]:
    """`url` itself, or with none an embedded Valkey in a temporary directory, stopped afterwards."""
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="turnstate-bench-") as tmp:
        server = EmbeddedValkey(Path(tmp), persistent=False)
        try:
            yield server.start()
        finally:
            server.stop()


@asynccontextmanager
async def bench_database(url: str | None) -> AsyncIterator[str]:
    """`url` itself, or with none a PostgreSQL with pgvector in a temporary directory, removed afterwards."""
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="turnstate-bench-pg-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "postgres", persistent=False)
        try:
            yield await asyncio.to_thread(postgres.start)
        finally:
            await asyncio.to_thread(postgres.stop)


async def server_version(client: aioredis.Redis) -> str:
    info = await client.info("server")
    if "valkey_version" in info:
        return f"Valkey {info['valkey_version']}"
    return f"Redis {info.get('redis_version', '?')}"


async def run_core_bench(
    url: str | None,
    *,
    turns: int = 50,
    blocks: int = 20,
    short_history: int = 50,
    long_history: int = 5000,
    window: int = 20,
    message_bytes: int = MESSAGE_BYTES,
    warmup: int = 20,
    key_prefix: str | None = None,
) -> CoreBenchResult:
    """Measure whole turns of each variant, `turns` per block for `blocks` blocks.

    On `url`, or with none on an embedded Valkey. Everything is written under a fresh key
    prefix (or `key_prefix`) and deleted afterwards.
    """
    prefix = key_prefix or f"bench{uuid.uuid4().hex[:8]}"
    texts = Texts.of_size(message_bytes)
    short = Settings(key_prefix=prefix, window_messages=window, max_messages=short_history)
    long = Settings(key_prefix=prefix, window_messages=window, max_messages=long_history)
    with bench_server(url) as live_url:
        client = make_client(live_url, connect_timeout=5)
        address = redacted(live_url)
        variants = [
            _Variant("bare", "article-style Lua turn, redis-py + json", short_history,
                     BareTurns(client, short, "bare", texts)),
            _Variant("turnstate", "Store.begin_turn + finish_turn", short_history,
                     TurnstateTurns(Store(client, short, address=address), "short", texts)),
            _Variant(f"turnstate-{long_history}", "the same, long conversation", long_history,
                     TurnstateTurns(Store(client, long, address=address), "long", texts)),
        ]  # fmt: skip
        try:
            server = await server_version(client)
            for v in variants:
                await v.prepare(warmup, window)
            for b in range(blocks):
                gc.collect()
                for v in variants[b % 3 :] + variants[: b % 3]:
                    await v.run(turns, timed=True)
            bare, short_result, long_result = [await v.result(client) for v in variants]
        finally:
            for v in variants:
                await v.work.delete()
            await client.aclose()
    return CoreBenchResult(
        bare,
        short_result,
        long_result,
        turns=turns,
        blocks=blocks,
        message_bytes=message_bytes,
        window=window,
        server=server,
    )


def render_markdown(result: CoreBenchResult) -> str:
    """The result as a markdown table, then the ratios against their targets."""

    def commands(v: VariantResult) -> str:
        if v.commands_per_turn is None:
            return "n/a"
        return ", ".join(f"{n:g} {name.upper()}" for name, n in sorted(v.commands_per_turn.items()))

    def verdict(ratio: float, target: float) -> str:
        return "meets" if ratio <= target else "misses"

    lines = [
        f"Whole turn (begin + finish, no model), {result.message_bytes}-byte messages, "
        f"{result.window}-message window; {result.blocks} blocks x {result.turns} turns per variant; {result.server}.",
        "",
        "| variant | what | history | p50 (us) | p99 (us) | mean (us) | commands per turn |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {v.name} | {v.description} | {v.history} | {v.p50_us:.0f} | {v.p99_us:.0f} | {v.mean_us:.0f} "
        f"| {commands(v)} |"
        for v in result.variants
    ]
    lines += [
        "",
        f"- turnstate / bare, p50: **{result.p50_ratio:.2f}x** "
        f"(target <= {TARGET_P50_RATIO}: {verdict(result.p50_ratio, TARGET_P50_RATIO)})",
        f"- turnstate / bare, p99: **{result.p99_ratio:.2f}x**",
        f"- {result.turnstate_long.history} / {result.turnstate.history} messages, p50: **{result.flat_ratio:.2f}x** "
        f"(target <= {TARGET_FLAT_RATIO}: {verdict(result.flat_ratio, TARGET_FLAT_RATIO)})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m turnstate.bench.core", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Redis URL (default: an embedded Valkey in a temporary directory)")
    parser.add_argument("--turns", type=int, default=50, help="turns per variant per block (default 50)")
    parser.add_argument("--blocks", type=int, default=20, help="blocks (default 20)")
    parser.add_argument("--long-history", type=int, default=5000, help="the long conversation (default 5000)")
    ns = parser.parse_args()
    result = asyncio.run(run_core_bench(ns.url, turns=ns.turns, blocks=ns.blocks, long_history=ns.long_history))
    print(render_markdown(result))
