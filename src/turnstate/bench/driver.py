"""`turnstate bench run`: the article's four patterns and turnstate, on one workload, one server.

Every pattern runs through the same `ChatPattern` interface, the same client settings and the
same messages (400 bytes, a 20-message window), in one run, so the figures compare as ratios:

1. latency per turn, and what it puts on the wire, at each history length;
2. the same turn behind an added round-trip time (a delay proxy in its own process);
3. throughput with 1, 8, 64 sessions at once;
4. the race: concurrent turns of one session, and the messages lost, duplicated, misordered;
5. long-term memory on the critical path: a turn with a summary in the session vs without, and
   a turn through `Chat` with recall (embedding + pgvector query) on vs off (`recall_turn.py`).

Everything is written under a fresh key prefix, with a one-hour TTL, and deleted at the end; the
recall part's facts live in a schema of their own, dropped at the end.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis

from turnstate.bench.core import bench_database, bench_server, percentile, server_version
from turnstate.bench.load import drive, races, throughput
from turnstate.bench.meter import Wire, count_wire
from turnstate.bench.proxy import DelayProxy, delay_proxy_process
from turnstate.bench.recall_turn import ChatTurns, recall_setup
from turnstate.bench.results import (
    BenchConfig,
    BenchResult,
    Machine,
    Measurement,
    Race,
    Recall,
    Throughput,
    checks,
    costs,
)
from turnstate.bench.runner import Runner
from turnstate.bench.summary import (
    ArticleMemoryPattern,
    plant_article_summary,
    plant_summary,
    summary_seen,
)
from turnstate.bench.workloads import Texts, text
from turnstate.config import Settings
from turnstate.connection import make_client
from turnstate.patterns import AtomicLuaPattern, ChatPattern, TurnstatePattern, all_patterns
from turnstate.store import Store
from turnstate.types import Policy

TTL_SECONDS = 3600
PINGS = 25
LOOPBACK = ("127.0.0.1", "localhost", "::1")
NO_DATABASE = "not run: --short without --database-url (a full run starts an embedded PostgreSQL)"


class Progress(Protocol):
    """Told what the bench is doing, so a terminal can show it."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self) -> None: ...


class _Quiet:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self) -> None:
        pass


def bench_settings(prefix: str, history: int, config: BenchConfig) -> Settings:
    """Every pattern's settings: the article's window, `history` messages kept, queue policy."""
    return Settings(
        key_prefix=prefix,
        window_messages=config.window,
        max_messages=history,
        window_tokens=8000,
        ttl_seconds=TTL_SECONDS,
        policy=Policy.QUEUE,
    )


def patterns_on(client: aioredis.Redis, settings: Settings) -> dict[str, ChatPattern]:
    return {p.name: p for p in all_patterns(Store(client, settings, address="bench"))}


def proxied_url(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}").geturl()


def machine(server: str) -> Machine:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return Machine(os.cpu_count() or 0, model, server, platform.python_version(), redis.__version__, system)


class Bench:
    """One run: the server's clients, the key prefix, the messages; a method per phase."""

    def __init__(
        self, url: str, config: BenchConfig, prefix: str, progress: Progress, database_url: str | None = None
    ) -> None:
        self.url, self.config, self.prefix, self.progress = url, config, prefix, progress
        self.database_url = database_url
        self.texts = Texts.of_size(config.message_bytes)
        self.direct = make_client(url, connect_timeout=5)
        self.observer = make_client(url, connect_timeout=5)
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379) if parts.scheme == "redis" else None
        self.loopback = self.target is not None and self.target[0] in LOOPBACK

    async def aclose(self) -> None:
        async for key in self.observer.scan_iter(f"{self.prefix}:*", count=1000):
            await self.observer.delete(key)
        await self.direct.aclose()
        await self.observer.aclose()

    async def prepared(self, patterns: dict[str, ChatPattern], history: int, tag: str) -> list[Runner]:
        runners = []
        for name, pattern in patterns.items():
            runner = Runner(name, pattern, f"{self.prefix}-{tag}-{name}", history, self.texts)
            await runner.prepare(self.config.warmup)
            runners.append(runner)
            self.progress.advance()
        return runners

    async def timed_blocks(self, runners: Sequence[Runner], seconds: float | None = None) -> None:
        """Blocks of turns, the runners' order rotating, so drift of the machine hits all alike.

        One untimed block first: on a fresh VM, memory touched for the first time is slow, and
        whichever runner came first would pay for it. A garbage collection runs before each
        runner's turns, so none pays for another's garbage. A runner's block stops after `turns`
        turns or `seconds` (default: the config's `block_seconds`).
        """
        for b in range(-1, self.config.blocks):
            k = b % len(runners)
            for runner in [*runners[k:], *runners[:k]]:
                gc.collect()
                await runner.timed(self.config.turns, seconds or self.config.block_seconds)
                if b < 0:
                    runner.samples.clear()
                    runner.cpu_ns = 0
                else:
                    self.progress.advance()

    async def counted(self, runners: Sequence[Runner], settings: Settings) -> dict[str, Wire | None]:
        """Count each runner's traffic through an in-process counting proxy (TCP servers only)."""
        if self.target is None:
            return {r.name: None for r in runners}
        out: dict[str, Wire | None] = {}
        async with DelayProxy(*self.target) as proxy:
            client = make_client(proxied_url(self.url, proxy.port), connect_timeout=5)
            try:
                await client.ping()  # the connection's handshake is not a turn's
                on_proxy = patterns_on(client, settings)
                for r in runners:
                    pattern = on_proxy.get(r.name) or _same_kind(r.pattern, client, settings)
                    out[r.name] = await count_wire(r.on(pattern), proxy, self.observer, self.config.counted_turns)
                    self.progress.advance()
            finally:
                await client.aclose()
        return out

    def measured(self, runners: Sequence[Runner], wires: dict[str, Wire | None], delay: float) -> list[Measurement]:
        return [Measurement(r.name, r.history, delay, r.window, r.latency(), wires.get(r.name)) for r in runners]

    async def latency(self) -> list[Measurement]:
        """Every pattern at every history length, interleaved in the same blocks; then counted."""
        c, out = self.config, []
        self.progress.phase("latency and traffic per turn", len(c.histories) * 5 * (c.blocks + 2))
        groups = []
        for history in c.histories:
            settings = bench_settings(self.prefix, history, c)
            groups.append((settings, await self.prepared(patterns_on(self.direct, settings), history, f"h{history}")))
        await self.timed_blocks([r for _, runners in groups for r in runners])
        for settings, runners in groups:
            out += self.measured(runners, await self.counted(runners, settings), 0.0)
            for r in runners:
                await r.delete()
        return out

    async def _ping_ms(self, client: aioredis.Redis) -> float:
        samples = []
        for _ in range(PINGS):
            start = time.perf_counter_ns()
            await client.ping()
            samples.append(time.perf_counter_ns() - start)
        return percentile(sorted(samples), 0.5) / 1e6

    async def delayed(self, runners: Sequence[Runner], settings: Settings, delay: float) -> tuple[float, list[Runner]]:
        """Run `runners`' sessions through a delay proxy; return the measured added RTT and the runs."""
        assert self.target is not None
        direct_ms = await self._ping_ms(self.direct)
        async with delay_proxy_process(*self.target, delay) as port:
            client = make_client(proxied_url(self.url, port), connect_timeout=5)
            try:
                added = await self._ping_ms(client) - direct_ms
                on_proxy = patterns_on(client, settings)
                moved = []
                for r in runners:
                    far = r.on(on_proxy.get(r.name) or _same_kind(r.pattern, client, settings))
                    await far.turn()  # warm up the new connection
                    await far.timed(self.config.rtt_turns, self.config.rtt_seconds)
                    moved.append(far)
                    self.progress.advance()
            finally:
                await client.aclose()
        return added, moved

    async def rtt(self) -> tuple[dict[str, float], list[Measurement]]:
        c = self.config
        if not self.loopback:
            return {}, []
        history = min(c.histories)
        delays = (0.0, *c.delays_ms)
        self.progress.phase("added round-trip time", 5 + 5 * len(delays))
        settings = bench_settings(self.prefix, history, c)
        runners = await self.prepared(patterns_on(self.direct, settings), history, "rtt")
        added, out = {}, []
        for delay in delays:
            added[f"{delay:g}"], moved = await self.delayed(runners, settings, delay)
            out += self.measured(moved, {}, delay)
        for r in runners:
            await r.delete()
        return added, out

    async def throughput(self) -> list[Throughput]:
        """Each pattern at each number of sessions, in two halves, the patterns' order reversed in the second."""
        c, out = self.config, []
        self.progress.phase("throughput", 10 * len(c.sessions))
        settings = bench_settings(self.prefix, 2 * c.conversation_turns, c)
        patterns = patterns_on(self.direct, settings)
        for sessions in c.sessions:
            samples: dict[str, list[int]] = {name: [] for name in patterns}
            seconds = dict.fromkeys(patterns, 0.0)
            for half, order in enumerate((list(patterns), list(reversed(patterns)))):
                for name in order:
                    tag = f"{self.prefix}-tp{sessions}-{half}-{name}"
                    seconds[name] += await drive(
                        patterns[name], sessions, c.throughput_seconds / 2, self.texts, tag, samples[name],
                        conversation_turns=c.conversation_turns,
                    )  # fmt: skip
                    self.progress.advance()
            out += [throughput(name, sessions, samples[name], seconds[name]) for name in patterns]
        return out

    async def race(self) -> list[Race]:
        c = self.config
        # Room for every raced message: a trimmed one would count as lost.
        kept = max(2 * c.race_turns, c.window)
        store = Store(self.direct, bench_settings(self.prefix, kept, c), address="bench")
        patterns = [*all_patterns(store), TurnstatePattern(store, policy=Policy.INTERLEAVE)]
        self.progress.phase("race", len(patterns))
        out = []
        for pattern in patterns:
            out += await races(
                [pattern], f"{self.prefix}-race", rounds=c.race_rounds, turns=c.race_turns,
                think_seconds=c.race_think_seconds,
            )  # fmt: skip
            self.progress.advance()
        return out

    async def memory(self) -> list[Measurement]:
        """The turn with a summary in the session vs without: turnstate, and the article's pattern 4."""
        c = self.config
        history = min(c.histories)
        settings = bench_settings(self.prefix, history, c)
        store = Store(self.direct, settings, address="bench")
        variants: dict[str, ChatPattern] = {
            "turnstate": TurnstatePattern(store),
            "turnstate+summary": TurnstatePattern(store),
            "atomic-lua": AtomicLuaPattern(self.direct, settings),
            "atomic-lua+memory": ArticleMemoryPattern(self.direct, settings),
        }
        far = max(c.delays_ms) if self.loopback and c.delays_ms else None
        self.progress.phase("summary on the critical path", 4 * (c.blocks + 2 + (far is not None)))
        summary = text(7, c.summary_bytes)
        runners = []
        for name, pattern in variants.items():
            runner = Runner(name, pattern, f"{self.prefix}-mem-{name.replace('+', '-')}", history, self.texts)
            if isinstance(pattern, ArticleMemoryPattern):
                await plant_article_summary(pattern, runner.session, summary)
            elif name.endswith("+summary"):
                await plant_summary(self.direct, settings, runner.session, summary, store.tokens.count(summary), 0)
            handle = await runner.prepare(c.warmup)
            if isinstance(pattern, ArticleMemoryPattern | TurnstatePattern):
                seen, wanted = summary_seen(pattern, handle), None if name == "turnstate" else summary
                if seen != wanted:
                    raise RuntimeError(f"{name}: the turn was given the summary {seen!r:.40}, not {wanted!r:.40}")
            runners.append(runner)
            self.progress.advance()
        await self.timed_blocks(runners)
        return await self.near_and_far(runners, settings, far)

    async def near_and_far(self, runners: Sequence[Runner], settings: Settings, far: float | None) -> list[Measurement]:
        """Timed runners with their traffic counted, then again behind `far` ms of added RTT; sessions deleted."""
        out = self.measured(runners, await self.counted(runners, settings), 0.0)
        if far is not None:
            _, moved = await self.delayed(runners, settings, far)
            out += self.measured(moved, {}, far)
        for r in runners:
            await r.delete()
        return out

    async def recall(self) -> Recall:
        """The turn through `Chat` with recall on vs off, with long and short user messages."""
        assert self.database_url is not None
        c = self.config
        history = min(c.histories)
        settings = bench_settings(self.prefix, history, c)
        store = Store(self.direct, settings, address="bench")
        far = max(c.delays_ms) if self.loopback and c.delays_ms and not c.short else None
        async with recall_setup(self.database_url, store, self.prefix, c) as setup:
            self.progress.phase("recall on the critical path", len(setup.variants) * (c.blocks + 2 + (far is not None)))
            runners = []
            for v in setup.variants:
                runner = Runner(v.pattern.name, v.pattern, v.session, history, v.texts)
                with v.pattern.without_recall():
                    await runner.prepare(0)
                for _ in range(max(1, c.warmup)):  # with recall, if on: the embedder and the pool warm up
                    await runner.turn()
                if v.pattern.chat.recall is not None and not v.pattern.tally.with_facts:
                    raise RuntimeError(f"{v.pattern.name}: no turn was given recalled facts")
                runners.append(runner)
                self.progress.advance()
            setup.reset()
            await self.timed_blocks(runners, c.recall_block_seconds)
            setup.collect()
            variants = [v.result() for v in setup.variants]
            out = await self.near_and_far(runners, settings, far)
        return Recall(setup.facts_per_user, setup.other_facts, settings.recall_k, out, variants)


def _same_kind(pattern: ChatPattern, client: aioredis.Redis, settings: Settings) -> ChatPattern:
    """`pattern` rebuilt on another client (for the variants `all_patterns` does not make)."""
    if isinstance(pattern, ChatTurns):
        return pattern.moved(Store(client, settings, address="bench"))
    if isinstance(pattern, TurnstatePattern):
        return TurnstatePattern(Store(client, settings, address="bench"), pattern.policy)
    if isinstance(pattern, AtomicLuaPattern):
        return type(pattern)(client, settings)
    raise TypeError(f"cannot move a {type(pattern).__name__} to another client")


async def run_bench(
    url: str | None,
    config: BenchConfig,
    *,
    key_prefix: str | None = None,
    progress: Progress | None = None,
    database_url: str | None = None,
) -> BenchResult:
    """Run every phase on `url` (or a fresh embedded Valkey) and return the results with their checks.

    The recall part runs on `database_url`, else on an embedded PostgreSQL; `--short` without a
    database URL skips it (the regression check stays seconds long and needs no PostgreSQL).
    """
    prefix = key_prefix or f"bench{uuid.uuid4().hex[:8]}"
    skip_recall = config.short and database_url is None
    async with contextlib.AsyncExitStack() as stack:
        live = stack.enter_context(bench_server(url))
        database = None if skip_recall else await stack.enter_async_context(bench_database(database_url))
        bench = Bench(live, config, prefix, progress or _Quiet(), database)
        try:
            host = machine(await server_version(bench.direct))
            latency = await bench.latency()
            added, rtt = await bench.rtt()
            load = await bench.throughput()
            race = await bench.race()
            memory = await bench.memory()
            recall = None if database is None else await bench.recall()
        finally:
            await bench.aclose()
    return BenchResult(
        config=config,
        machine=host,
        latency=latency,
        added_rtt_ms=added,
        rtt=rtt,
        throughput=load,
        race=race,
        memory=memory,
        recall=recall,
        recall_note=NO_DATABASE if recall is None else "",
        cost=costs(latency, config.price_per_100k),
        checks=checks(latency, memory + (recall.turns if recall else [])),
    )
