"""Prometheus metrics of one service process: turn latency (state vs model), round trips, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from turnstate.chat import Chat, ChatResult

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self, chat: Chat) -> None:
        self.registry = CollectorRegistry()
        self.state_seconds = Histogram(
            "turnstate_turn_state_seconds", "Redis time of a turn (begin + finish)", buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.model_seconds = Histogram(
            "turnstate_turn_model_seconds", "Model time of a turn", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.turns = Counter("turnstate_turns", "Turns answered", ["endpoint"], registry=self.registry)
        self.errors = Counter("turnstate_errors", "Requests that failed, by error", ["kind"], registry=self.registry)
        self.registry.register(
            _CounterFrom(
                "turnstate_redis_round_trips", "Round trips to the state store", lambda: chat.store.round_trips
            )
        )
        leases = Gauge("turnstate_leases_held", "Turns between begin and finish here", registry=self.registry)
        leases.set_function(lambda: chat.turns_in_flight)
        if chat.recall is not None:
            stats = chat.recall.stats
            for outcome, read in (
                ("done", lambda: stats.done),
                ("failed", lambda: stats.failed),
                ("late", lambda: stats.late),
            ):
                name = f"turnstate_recalls_{outcome}"
                self.registry.register(
                    _CounterFrom(name, f"Fact recalls {outcome} (failed or late: turn went on without)", read)
                )

    def observe(self, result: ChatResult, endpoint: str) -> None:
        self.turns.labels(endpoint).inc()
        self.state_seconds.observe(result.state_seconds)
        self.model_seconds.observe(result.model_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CounterFrom(Collector):
    """A counter whose value is read from elsewhere (the store counts its own round trips)."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.read())
