"""The benchmark's results: what was measured, the bill it implies, and the regression checks.

The checks never look at time, only at counts that do not depend on the machine's speed, so
they cannot flake: a turnstate turn costs at most two round trips, and its bytes on the wire do
not grow with the history length.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from turnstate.bench.memory_recall import Latency as RecallLatency
from turnstate.bench.meter import Wire
from turnstate.bench.runner import Latency

TURNSTATE = "turnstate"
MAX_ROUND_TRIPS = 2
BYTES_GROWTH_TOLERANCE = 1.10  # sequence numbers and ids gain digits as a conversation grows
# Upstash's public pay-as-you-go list price at the time of writing; a parameter, not a fact.
DEFAULT_PRICE_PER_100K = 0.20


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """How much to measure; `full()` takes a few minutes on two cores, `short()` a few seconds."""

    histories: tuple[int, ...] = (50, 500, 5000)
    delays_ms: tuple[float, ...] = (1.0, 20.0)
    sessions: tuple[int, ...] = (1, 8, 64)
    blocks: int = 10
    turns: int = 300  # timed turns per pattern per block
    block_seconds: float = 0.6  # ...or fewer, once a pattern's block has run this long
    warmup: int = 10
    counted_turns: int = 3
    rtt_turns: int = 200
    rtt_seconds: float = 2.5
    throughput_seconds: float = 3.0  # per pattern and number of sessions, run as two halves
    conversation_turns: int = 25  # a throughput worker's conversation: the article's 50 messages
    race_turns: int = 16
    race_rounds: int = 5
    race_think_seconds: float = 0.02
    summary_bytes: int = 1200
    recall_facts_per_user: int = 50  # facts of each measured user
    recall_other_facts: int = 10_000  # other users' facts in the same table, `recall_facts_per_user` each
    recall_block_seconds: float = 1.2  # per variant per block: a recall-on turn takes tens of ms
    message_bytes: int = 400
    window: int = 20
    price_per_100k: float = DEFAULT_PRICE_PER_100K
    short: bool = False

    @classmethod
    def full(cls, **overrides: Any) -> BenchConfig:
        return cls(**overrides)

    @classmethod
    def short_run(cls, **overrides: Any) -> BenchConfig:
        values: dict[str, Any] = {
            "histories": (50, 500),
            "delays_ms": (1.0,),
            "sessions": (1, 8),
            "blocks": 2,
            "turns": 15,
            "block_seconds": 0.5,
            "warmup": 2,
            "counted_turns": 2,
            "rtt_turns": 8,
            "rtt_seconds": 1.0,
            "throughput_seconds": 0.3,
            "race_turns": 8,
            "race_rounds": 1,
            "recall_facts_per_user": 10,
            "recall_other_facts": 200,
            "recall_block_seconds": 0.1,
            "short": True,
        }
        return cls(**(values | overrides))


@dataclass(frozen=True, slots=True)
class Measurement:
    """One pattern at one history length and added round-trip time."""

    pattern: str
    history: int
    delay_ms: float
    window: int  # messages in the prompt window the turn got
    latency: Latency
    wire: Wire | None  # None where it was not counted


@dataclass(frozen=True, slots=True)
class Throughput:
    pattern: str
    sessions: int
    turns: int
    seconds: float
    turns_per_second: float
    p50_us: float
    p99_us: float


@dataclass(frozen=True, slots=True)
class Race:
    """Damage summed over `rounds` races of `turns` concurrent turns on one session."""

    pattern: str
    rounds: int
    turns: int
    lost: int
    duplicated: int
    misordered: int
    stored: int
    shared_snapshots: int


@dataclass(frozen=True, slots=True)
class RecallVariant:
    """A chat turn variant with recall on or off: what its turns recalled, and what recall waited for."""

    pattern: str
    messages: str  # the user messages it sent
    recall: bool
    turns: int  # turns run at +0 ms (the untimed block included)
    with_facts: int  # of them, turns whose prompt carried recalled facts
    facts_per_turn: float
    late_or_failed: int  # recalls skipped (late or failed) over the whole variant; the bench allows 30 s
    embed: RecallLatency | None  # the user message's embedding, inside those turns (recall on only)
    query: RecallLatency | None  # the pgvector query, inside those turns


@dataclass(frozen=True, slots=True)
class Recall:
    """The chat turn (`Chat`, model excluded) with recall on vs off, against PostgreSQL with pgvector."""

    facts_per_user: int
    other_facts: int
    k: int
    turns: list[Measurement]  # latency of each variant, +0 ms (wire counted) and the largest added RTT
    variants: list[RecallVariant]


@dataclass(frozen=True, slots=True)
class Cost:
    pattern: str
    commands_per_turn: float
    commands_per_1000_turns: float
    dollars_per_million_turns: float


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str
    ran: bool = True  # False: nothing to check (no TCP server to count on, or one history length)


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    cpu_model: str
    server: str
    python: str
    redis_py: str
    system: str


@dataclass(frozen=True, slots=True)
class BenchResult:
    config: BenchConfig
    machine: Machine
    latency: list[Measurement]
    added_rtt_ms: dict[str, float]  # nominal added RTT -> measured (PING p50 through the proxy minus direct)
    rtt: list[Measurement]
    throughput: list[Throughput]
    race: list[Race]
    memory: list[Measurement]
    recall: Recall | None  # None: not run (see recall_note)
    recall_note: str = ""
    cost: list[Cost] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> str:
        return json.dumps(as_plain(self), indent=2)


def as_plain(value: Any) -> Any:
    """Dataclasses as dicts, with a Wire's totals spelt out for readers of the JSON."""
    if isinstance(value, Wire):
        plain = dataclasses.asdict(value)
        plain |= {"bytes_total": value.bytes_total, "sent_total": value.sent_total}
        return plain | {"executed_total": value.executed_total}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [as_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    return value


def costs(measurements: list[Measurement], price_per_100k: float) -> list[Cost]:
    """The bill under per-command pricing, from the commands each turn sent (shortest history)."""
    if not measurements:
        return []
    shortest = min(m.history for m in measurements)
    out = []
    for m in measurements:
        sent = m.wire.sent_total if m.wire is not None else None
        if m.history == shortest and sent is not None:
            out.append(Cost(m.pattern, sent, sent * 1000, sent * 1_000_000 / 100_000 * price_per_100k))
    return out


def checks(latency: list[Measurement], memory: list[Measurement]) -> list[Check]:
    """Two round trips per turnstate turn at most, and bytes per turn flat in the history length.

    A check with nothing to look at is reported as not run, and does not fail the run.
    """
    ours = [m for m in latency + memory if m.pattern.startswith(TURNSTATE) and m.wire is not None]
    worst = max((m.wire.round_trips for m in ours if m.wire is not None), default=None)
    trips_name = f"turnstate round trips per turn <= {MAX_ROUND_TRIPS}"
    if worst is None:
        trips = Check(trips_name, True, "not counted (needs a redis:// server)", ran=False)
    else:
        trips = Check(trips_name, worst <= MAX_ROUND_TRIPS, f"at most {worst:g} in {len(ours)} counted settings")
    by_history = sorted((m.history, m.wire.bytes_total) for m in latency if m.pattern == TURNSTATE and m.wire)
    flat_name = f"turnstate bytes per turn flat in history (within {BYTES_GROWTH_TOLERANCE:g}x of the shortest)"
    if len(by_history) < 2:
        flat = Check(flat_name, True, "not checked: needs two counted history lengths", ran=False)
    else:
        b0 = by_history[0][1]
        grown = [h for h, b in by_history[1:] if b > b0 * BYTES_GROWTH_TOLERANCE]
        shown = ", ".join(f"{h}: {b:.0f}" for h, b in by_history)
        flat = Check(flat_name, not grown, f"bytes per turn by history: {shown}")
    return [trips, flat]
