"""Turns of one pattern on one session, timed, at a steady history length.

A turn is what a chat request does around the model call: `begin` then `finish`, no model in
between. Patterns that bound their own history (bounded, atomic-lua, turnstate) are given
`max_messages` equal to the history length, so they hold it while measured. The JSON blob and
the plain list grow by two messages a turn; their key is put back (RESTORE of a DUMP taken after
seeding, outside the timed part) before it drifts 10% past the length being measured.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from turnstate.bench.core import percentile
from turnstate.bench.workloads import Texts, seed_history
from turnstate.patterns import ArticlePattern, ChatPattern, Handle, JsonBlobPattern, ListPattern

UNBOUNDED = (JsonBlobPattern, ListPattern)
P999_MIN_SAMPLES = 1000


@dataclass(frozen=True, slots=True)
class Latency:
    """Per-turn wall time (microseconds) and the client's CPU time per turn."""

    samples: int
    p50_us: float
    p99_us: float
    p999_us: float | None  # None below P999_MIN_SAMPLES samples: it would just be the maximum
    mean_us: float
    cpu_us: float


def summarise(samples_ns: list[int], cpu_ns: int) -> Latency:
    ordered = sorted(samples_ns)
    n = len(ordered)
    p999 = percentile(ordered, 0.999) / 1000 if n >= P999_MIN_SAMPLES else None
    return Latency(
        samples=n,
        p50_us=percentile(ordered, 0.50) / 1000,
        p99_us=percentile(ordered, 0.99) / 1000,
        p999_us=p999,
        mean_us=sum(ordered) / n / 1000,
        cpu_us=cpu_ns / n / 1000,
    )


@dataclass
class Runner:
    """One pattern's turns on one session; `on(other)` drives the same session through another client."""

    name: str
    pattern: ChatPattern
    session: str
    history: int
    texts: Texts
    ids: Iterator[int] = field(default_factory=itertools.count)  # shared by clones: ids never repeat
    snapshot: bytes | None = None
    samples: list[int] = field(default_factory=list)
    cpu_ns: int = 0
    window: int = 0
    since_restore: int = 0

    @property
    def marker(self) -> str:
        """Every key of the session ends its hash tag with this, so MONITOR can pick its commands out."""
        return f"{self.session}}}"

    def on(self, pattern: ChatPattern) -> Runner:
        return dataclasses.replace(self, pattern=pattern, samples=[], cpu_ns=0)

    async def prepare(self, warmup: int) -> Handle:
        """Seed the history, warm up (scripts cached, connection open); return a turn's handle."""
        await seed_history(self.pattern, self.session, self.history, self.texts)
        if isinstance(self.pattern, UNBOUNDED):
            self.snapshot = await self.pattern.client.dump(self.pattern.key(self.session))
        handle = await self.turn()
        for _ in range(warmup):
            await self.turn()
        await self.restore()
        return handle

    async def restore(self) -> None:
        """Put an unbounded pattern's session back to exactly `history` messages."""
        if self.snapshot is not None and isinstance(self.pattern, ArticlePattern):
            p = self.pattern
            await p.client.restore(p.key(self.session), p.settings.ttl_seconds * 1000, self.snapshot, replace=True)
        self.since_restore = 0

    async def turn(self) -> Handle:
        n = next(self.ids)
        handle = await self.pattern.begin(self.session, self.texts.user(n), f"m{n}")
        await self.pattern.finish(handle, self.texts.reply(n))
        if self.since_restore == 0:  # the window at exactly `history` messages
            self.window = len(handle.window)
        self.since_restore += 1
        return handle

    async def timed(self, turns: int, budget_seconds: float) -> None:
        """Time up to `turns` turns, stopping early once `budget_seconds` have passed."""
        deadline = time.perf_counter_ns() + int(budget_seconds * 1e9)
        for _ in range(turns):
            if self.since_restore >= max(1, self.history // 20):
                await self.restore()
            cpu = time.process_time_ns()
            start = time.perf_counter_ns()
            await self.turn()
            end = time.perf_counter_ns()
            self.cpu_ns += time.process_time_ns() - cpu
            self.samples.append(end - start)
            if end > deadline:
                break

    def latency(self) -> Latency:
        return summarise(self.samples, self.cpu_ns)

    async def delete(self) -> None:
        await self.pattern.delete(self.session)
