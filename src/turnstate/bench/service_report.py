"""The service bench's result as markdown: the overhead as a difference and a ratio, then throughput.

CPU per turn is shown beside wall time: on a machine other work shares, wall time swings with the
share it gets, while the CPU each party spends on a turn stays put.
"""

from __future__ import annotations

from turnstate.bench.service import Cpu, ServiceBenchResult, Timing

CPU_HEADERS = "CPU ms/turn: client | service | server | all"
CLIENTS = {False: "one httpx AsyncClient, its pool shared by all", True: "an httpx AsyncClient per client"}


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _parts(cpu: Cpu) -> tuple[float | None, ...]:
    return (cpu.client, cpu.service, cpu.server)


def cpu_ms(t: Timing) -> float | None:
    """All parties' CPU per turn (ms); None if a part could not be read."""
    parts = _parts(t.cpu)
    return None if None in parts or not t.turns else sum(p or 0.0 for p in parts) * 1000 / t.turns


def _cpu_cells(t: Timing) -> str:
    per_turn = [None if p is None or not t.turns else p * 1000 / t.turns for p in _parts(t.cpu)]
    return " | ".join("n/a" if v is None else _ms(v) for v in [*per_turn, cpu_ms(t)])


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def _row(name: str, t: Timing) -> str:
    return f"| {name} | {t.turns} | {t.failures} | {_ms(t.p50_ms)} | {_ms(t.p99_ms)} | {_cpu_cells(t)} |"


def render_markdown(r: ServiceBenchResult) -> str:
    lines = [
        f"Overhead per turn: offline model, memory off, {r.message_bytes}-byte messages, one turn at a time; "
        f"{r.blocks} blocks x {r.turns} turns per variant, interleaved, after {r.warmup} untimed turns each. "
        f"{r.server}; {r.machine}.",
        "",
        f"| variant | turns | failed | p50 ms | p99 ms | {CPU_HEADERS} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _row("library: `Chat.turn` in-process", r.library),
        _row("service: POST /v1/sessions/{id}/turns, JSON", r.service),
        _row("service: the same, streamed (SSE read to `done`)", r.streaming),
        f"| (inside the service: its `Chat.turn`, state_ms + model_ms) | {r.inside.turns} | | {_ms(r.inside.p50_ms)} "
        f"| {_ms(r.inside.p99_ms)} | | | | |",
        "",
        f"- service - library, p50: **+{_ms(r.overhead_p50_ms)} ms** "
        f"(**{_ratio(r.service.p50_ms, r.library.p50_ms)}**); "
        f"p99: **+{_ms(r.overhead_p99_ms)} ms** ({_ratio(r.service.p99_ms, r.library.p99_ms)})",
        f"- CPU per turn, all parties, service / library: **{_ratio(cpu_ms(r.service), cpu_ms(r.library))}**",
        f"- streamed / JSON, p50: **{_ratio(r.streaming.p50_ms, r.service.p50_ms)}**; "
        f"p99: {_ratio(r.streaming.p99_ms, r.service.p99_ms)}; "
        f"CPU per turn: {_ratio(cpu_ms(r.streaming), cpu_ms(r.service))}",
        "",
        f"Throughput: each client on its own session, next turn when the last is answered, for up to "
        f"{r.seconds:g} s or {r.max_turns} turns per client (after {r.warmup} untimed turns each); "
        f"{CLIENTS[r.client_per_session]}, HTTP/1.1 keep-alive. CPU: used per turn by this process (the HTTP "
        "client), the service process and the Redis server; cores busy: all three together over the wall time.",
        "",
        f"| clients | turns | failed | turns/s | p50 ms | p99 ms | {CPU_HEADERS} | cores busy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load in r.loads:
        t = load.timing
        total = cpu_ms(t)
        busy = "n/a" if total is None else f"{total * t.turns / 1000 / load.seconds:.2f}"
        lines.append(
            f"| {load.clients} | {t.turns} | {t.failures} | {load.turns_per_second:.0f} | {_ms(t.p50_ms)} "
            f"| {_ms(t.p99_ms)} | {_cpu_cells(t)} | {busy} |"
        )
    lines += ["", "Failed: turns answered with an error or not at all, warm-up turns included; never timed."]
    failures = [t.first_failure for t in (r.library, r.service, r.streaming, *(x.timing for x in r.loads))]
    if first := next((f for f in failures if f), None):
        lines += ["", f"**{r.failures} turns failed**; the first: {first}"]
    return "\n".join(lines)
