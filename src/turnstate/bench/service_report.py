"""The service bench's result as markdown: the overhead as a difference and a ratio, then throughput."""

from __future__ import annotations

from turnstate.bench.service import Cpu, Load, ServiceBenchResult, Timing


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _per_turn(seconds: float | None, load: Load) -> str:
    return "n/a" if seconds is None or not load.timing.turns else _ms(seconds * 1000 / load.timing.turns)


def _busy(cpu: Cpu, seconds: float) -> str:
    """Cores kept busy by the three parties together, over the level's wall time."""
    parts = (cpu.generator, cpu.service, cpu.server)
    return "n/a" if None in parts else f"{sum(p or 0.0 for p in parts) / seconds:.2f}"


def _row(name: str, t: Timing) -> str:
    return f"| {name} | {t.turns} | {t.failures} | {_ms(t.p50_ms)} | {_ms(t.p99_ms)} |"


def render_markdown(r: ServiceBenchResult) -> str:
    lines = [
        f"Overhead per turn: offline model, memory off, {r.message_bytes}-byte messages, one turn at a time; "
        f"{r.blocks} blocks x {r.turns} turns per variant, interleaved, after {r.warmup} untimed turns each. "
        f"{r.server}; {r.machine}.",
        "",
        "| variant | turns | failed | p50 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|---:|",
        _row("library: `Chat.turn` in-process", r.library),
        _row("service: POST /v1/sessions/{id}/turns, JSON", r.service),
        _row("service: the same, streamed (SSE read to `done`)", r.streaming),
        _row("(inside the service: its `Chat.turn`, state_ms + model_ms)", r.inside),
        "",
        f"- service - library, p50: **+{_ms(r.overhead_p50_ms)} ms** "
        f"(**{r.service.p50_ms / r.library.p50_ms:.2f}x**); "
        f"p99: **+{_ms(r.overhead_p99_ms)} ms** ({r.service.p99_ms / r.library.p99_ms:.2f}x)",
        f"- streamed / JSON, p50: **{r.streaming.p50_ms / r.service.p50_ms:.2f}x**; "
        f"p99: {r.streaming.p99_ms / r.service.p99_ms:.2f}x",
        "",
        f"Throughput: each client on its own session, next turn when the last is answered, for up to "
        f"{r.seconds:g} s or {r.max_turns} turns per client (after {r.warmup} untimed turns each); "
        "one httpx client, HTTP/1.1 keep-alive. CPU: milliseconds per turn used by the load generator (this "
        "process), the service process and the Redis server; cores busy: all three together over the wall time.",
        "",
        "| clients | turns | failed | turns/s | p50 (ms) | p99 (ms) | CPU: generator | service | server | cores busy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load in r.loads:
        t, cpu = load.timing, load.cpu
        lines.append(
            f"| {load.clients} | {t.turns} | {t.failures} | {load.turns_per_second:.0f} | {_ms(t.p50_ms)} "
            f"| {_ms(t.p99_ms)} | {_per_turn(cpu.generator, load)} | {_per_turn(cpu.service, load)} "
            f"| {_per_turn(cpu.server, load)} | {_busy(cpu, load.seconds)} |"
        )
    failures = [t.first_failure for t in (r.library, r.service, r.streaming, *(x.timing for x in r.loads))]
    if first := next((f for f in failures if f), None):
        lines += ["", f"**{r.failures} turns failed**; the first: {first}"]
    return "\n".join(lines)
