"""The results as tables (terminal and markdown), the headline ratios, the files, the progress bar.

Tables are built once, as rows of strings, and rendered twice: with rich for the terminal, as
markdown for `bench.md` and docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from turnstate.bench.charts import available as charts_available
from turnstate.bench.charts import write_charts
from turnstate.bench.driver import run_bench
from turnstate.bench.meter import Wire
from turnstate.bench.results import BenchConfig, BenchResult, Measurement, Throughput


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def ms(us: float | None) -> str:
    return "n/a" if us is None else f"{us / 1000:.2f}"


def num(value: float | None, fmt: str = "g") -> str:
    return "n/a" if value is None else format(value, fmt)


TRAFFIC = ["round trips", "cmds sent", "cmds run", "KB/turn"]


def traffic(w: Wire | None) -> list[str]:
    """Round trips, commands sent, commands executed, KB on the wire: one turn's traffic."""
    if w is None:
        return ["n/a"] * 4
    return [num(w.round_trips), num(w.sent_total), num(w.executed_total), f"{w.bytes_total / 1000:.1f}"]


def latency_table(result: BenchResult) -> Table:
    rows = [
        [m.pattern, str(m.history), ms(m.latency.p50_us), ms(m.latency.p99_us), ms(m.latency.p999_us),
         ms(m.latency.cpu_us), *traffic(m.wire), str(m.window)]
        for m in result.latency
    ]  # fmt: skip
    return Table(
        "Per turn (begin + finish, no model), loopback",
        ["pattern", "history", "p50 ms", "p99 ms", "p99.9 ms", "client CPU ms", *TRAFFIC, "window"],
        rows,
        "p99.9 needs 1,000 samples. Cmds sent: by the client (MONITOR); cmds run: by the server, inside scripts "
        "too (INFO commandstats); KB/turn: both ways, counted at a proxy. "
        "Window: messages in the prompt (the JSON blob prompts with the whole history).",
    )  # fmt: skip


def _pivot(cells: list[Measurement], label: Callable[[Measurement], str]) -> tuple[list[str], list[list[str]]]:
    delays = sorted({m.delay_ms for m in cells})
    names = list(dict.fromkeys(label(m) for m in cells))
    by = {(label(m), m.delay_ms): m for m in cells}
    headers = [f"+{d:g} ms {q}" for d in delays for q in ("p50", "p99")]
    rows = []
    for name in names:
        row = [name]
        for d in delays:
            m = by.get((name, d))
            row += [ms(m.latency.p50_us), ms(m.latency.p99_us)] if m else ["", ""]
        rows.append(row)
    return headers, rows


def rtt_table(result: BenchResult) -> Table:
    headers, rows = _pivot(result.rtt, lambda m: m.pattern)
    measured = ", ".join(f"+{k} ms -> {v:.2f} ms" for k, v in result.added_rtt_ms.items())
    return Table(
        "Added round-trip time (delay proxy), whole turn in ms",
        ["pattern", *headers],
        rows,
        f"Nominal added RTT -> measured (PING p50 through the proxy minus direct): {measured or 'not run'}.",
    )


def _sessions(n: int) -> str:
    return f"{n} session" if n == 1 else f"{n} sessions"


def throughput_table(result: BenchResult) -> Table:
    sessions = sorted({t.sessions for t in result.throughput})
    by: dict[tuple[str, int], Throughput] = {(t.pattern, t.sessions): t for t in result.throughput}
    names = list(dict.fromkeys(t.pattern for t in result.throughput))
    rows = [
        [name]
        + [f"{by[name, s].turns_per_second:.0f}" if (name, s) in by else "" for s in sessions]
        + [ms(by[name, sessions[-1]].p99_us) if (name, sessions[-1]) in by else ""]
        for name in names
    ]
    headers = [f"turns/s, {_sessions(s)}" for s in sessions] + [f"p99 ms, {_sessions(max(sessions, default=0))}"]
    return Table(
        "Throughput: concurrent sessions, one client process",
        ["pattern", *headers],
        rows,
        "Each session holds conversations of 25 turns, one after another. Client and server share the machine.",
    )


def race_table(result: BenchResult) -> Table:
    rows = [
        [r.pattern, f"{r.rounds} x {r.turns}", str(r.lost), str(r.duplicated), str(r.misordered), str(r.stored),
         str(r.shared_snapshots)]
        for r in result.race
    ]  # fmt: skip
    return Table(
        "The race: concurrent turns on one session",
        ["pattern", "rounds x turns", "lost", "duplicated", "misordered", "stored", "stale prompts"],
        rows,
        "Messages sent: 2 per turn. Misordered: replies not right after their question. Stale prompts: turns "
        "prompted with exactly another racing turn's snapshot, blind to it.",
    )


def cost_table(result: BenchResult) -> Table:
    price = result.config.price_per_100k
    rows = [
        [
            c.pattern,
            f"{c.commands_per_turn:g}",
            f"{c.commands_per_1000_turns:,.0f}",
            f"{c.dollars_per_million_turns:.2f}",
        ]
        for c in result.cost
    ]
    return Table(
        "Cost under per-command pricing",
        ["pattern", "commands per turn", "per 1,000 turns", "$ per million turns"],
        rows,
        f"Assumed price: ${price:g} per 100,000 commands (a parameter: --price-per-100k). Commands as sent by "
        "the client (a script is one command).",
    )


def memory_table(result: BenchResult) -> Table:
    headers, rows = _pivot(result.memory, lambda m: m.pattern)
    wires = {m.pattern: m.wire for m in result.memory if m.wire is not None}
    for row in rows:
        row += traffic(wires.get(row[0]))
    return Table(
        "Long-term memory on the critical path: a summary in the session vs none",
        ["variant", *headers, *TRAFFIC],
        rows,
        "atomic-lua+memory is the article's pattern 4 around the model call (GET summary, LLEN). Recall: the "
        "next table.",
    )


def recall_table(result: BenchResult) -> Table:
    title = "Long-term memory on the critical path: recall on vs off (a turn through Chat, no model)"
    headers = ["variant", "user messages", "embedding p50 ms", "vector query p50 ms", "facts in prompt"]
    r = result.recall
    if r is None:
        return Table(title, headers, [], f"Recall: {result.recall_note}.")
    pivot_headers, rows = _pivot(r.turns, lambda m: m.pattern)
    wires = {m.pattern: m.wire for m in r.turns if m.wire is not None}
    variants = {v.pattern: v for v in r.variants}
    for row in rows:
        v = variants[row[0]]
        ms_or_dash = [f"{x.p50_ms:.2f}" if x is not None else "-" for x in (v.embed, v.query)]
        shown = f"{v.with_facts}/{v.turns} turns, {v.facts_per_turn:.1f} each" if v.recall else "-"
        row[1:1] = [v.messages]
        row += [*ms_or_dash, shown, traffic(wires.get(row[0]))[0]]
    late = sum(v.late_or_failed for v in r.variants)
    return Table(
        title,
        [*headers[:2], *pivot_headers, *headers[2:], "round trips"],
        rows,
        f"Recall embeds the user message (offline multilingual-e5-small, on this CPU) and asks pgvector for the "
        f"user's {r.k} nearest of {r.facts_per_user} facts ({r.other_facts:,} other users' facts in the table); "
        "it runs beside begin_turn's round trip. Embedding and query: timed inside the recall-on turns at +0 ms. "
        f"Round trips: to Redis, counted at a proxy (recall talks to PostgreSQL). Recalls late or failed: {late}.",
    )


def checks_table(result: BenchResult) -> Table:
    rows = [[c.name, ("pass" if c.passed else "FAIL") if c.ran else "not run", c.detail] for c in result.checks]
    return Table("Regression checks (counts only, never time)", ["check", "result", "detail"], rows)


def _p50(cells: list[Measurement], pattern: str, *, history: int | None = None, delay: float = 0.0) -> float | None:
    for m in cells:
        if m.pattern == pattern and m.delay_ms == delay and (history is None or m.history == history):
            return m.latency.p50_us
    return None


def ratios(result: BenchResult) -> list[tuple[str, float]]:
    """The headline comparisons, each a ratio of two figures from this run."""
    out: list[tuple[str, float | None, float | None]] = []
    histories = sorted({m.history for m in result.latency})
    lat = result.latency
    for h in histories:
        out.append((f"json-blob / turnstate, p50, {h} messages", _p50(lat, "json-blob", history=h),
                    _p50(lat, "turnstate", history=h)))  # fmt: skip
    if histories:
        lo, hi = histories[0], histories[-1]
        out.append((f"turnstate p50, {hi} / {lo} messages", _p50(lat, "turnstate", history=hi),
                    _p50(lat, "turnstate", history=lo)))  # fmt: skip
        wire = {(m.pattern, m.history): m.wire for m in lat if m.wire is not None}
        blob, ours = wire.get(("json-blob", hi)), wire.get(("turnstate", hi))
        if blob and ours:
            out.append((f"json-blob / turnstate, bytes per turn, {hi} messages", blob.bytes_total, ours.bytes_total))
        out.append((f"turnstate / atomic-lua, p50, {lo} messages", _p50(lat, "turnstate", history=lo),
                    _p50(lat, "atomic-lua", history=lo)))  # fmt: skip
    delays = sorted({m.delay_ms for m in result.rtt})
    if delays:
        far = delays[-1]
        for other in ("list", "json-blob", "atomic-lua"):
            out.append((f"{other} / turnstate, p50, +{far:g} ms RTT", _p50(result.rtt, other, delay=far),
                        _p50(result.rtt, "turnstate", delay=far)))  # fmt: skip
    for d in sorted({m.delay_ms for m in result.memory}):
        out.append((f"turnstate with / without a summary, p50, +{d:g} ms", _p50(result.memory, "turnstate+summary",
                    delay=d), _p50(result.memory, "turnstate", delay=d)))  # fmt: skip
        out.append((f"article pattern 4 (atomic-lua+memory) / turnstate+summary, p50, +{d:g} ms",
                    _p50(result.memory, "atomic-lua+memory", delay=d), _p50(result.memory, "turnstate+summary",
                    delay=d)))  # fmt: skip
    out += _recall_ratios(result)
    return [(label, a / b) for label, a, b in out if a is not None and b]


def _recall_ratios(result: BenchResult) -> list[tuple[str, float | None, float | None]]:
    if result.recall is None:
        return []
    out: list[tuple[str, float | None, float | None]] = []
    turns = result.recall.turns
    for v in result.recall.variants:
        if not v.recall:
            continue
        off = v.pattern.replace("+recall", "")
        for d in sorted({m.delay_ms for m in turns}):
            out.append((f"turnstate chat with / without recall, p50, {v.messages}, +{d:g} ms",
                        _p50(turns, v.pattern, delay=d), _p50(turns, off, delay=d)))  # fmt: skip
        on = _p50(turns, v.pattern)
        for part, timing in (("embedding", v.embed), ("vector query", v.query)):
            if timing is not None and timing.samples:
                out.append((f"{part} / the recall-on turn, p50, {v.messages}", timing.p50_ms * 1000, on))
    return out


def tables(result: BenchResult) -> list[Table]:
    return [
        latency_table(result), rtt_table(result), throughput_table(result), race_table(result),
        cost_table(result), memory_table(result), recall_table(result), checks_table(result),
    ]  # fmt: skip


def print_report(result: BenchResult, console: Console) -> None:
    for t in tables(result):
        table = RichTable(title=t.title, caption=t.note or None, title_justify="left")
        for i, header in enumerate(t.headers):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in t.rows:
            table.add_row(*row)
        console.print(table)
    console.print("[bold]Ratios within this run[/bold]")
    for label, value in ratios(result):
        console.print(f"  {label}: [bold]{value:.2f}x[/bold]")


def markdown(result: BenchResult) -> str:
    m = result.machine
    lines = [
        f"Machine: {m.cpus} CPUs, {m.cpu_model}, {m.system}; server {m.server}; Python {m.python}, "
        f"redis-py {m.redis_py}.",
        "",
        "Ratios within this run:",
        "",
        *[f"- {label}: **{value:.2f}x**" for label, value in ratios(result)],
    ]
    for t in tables(result):
        lines += ["", f"### {t.title}", "", "| " + " | ".join(t.headers) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.headers))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in t.rows]
        if t.note:
            lines += ["", t.note]
    return "\n".join(lines) + "\n"


def write_report(result: BenchResult, folder: Path) -> list[Path]:
    """bench.json and bench.md in `folder` (created); the charts are written by `charts.py`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "bench.json", folder / "bench.md"]
    written[0].write_text(result.to_json() + "\n")
    written[1].write_text(markdown(result))
    return written


class TerminalProgress:
    """A rich progress bar with one task per phase of the bench."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def phase(self, name: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.task = self.progress.add_task(name, total=total)

    def advance(self) -> None:
        if self.task is not None:
            self.progress.advance(self.task)


async def run_and_report(
    url: str | None,
    config: BenchConfig,
    folder: Path,
    console: Console,
    *,
    key_prefix: str | None = None,
    database_url: str | None = None,
) -> BenchResult:
    """Run the bench with a progress bar, print the tables, write JSON, markdown and charts."""
    columns = (TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        progress = TerminalProgress(bar)
        result = await run_bench(url, config, key_prefix=key_prefix, progress=progress, database_url=database_url)
    print_report(result, console)
    files = write_report(result, folder) + write_charts(result, folder)
    if not charts_available():
        console.print("charts skipped: pip install 'turnstate[bench]' for matplotlib")
    console.print("wrote " + ", ".join(str(f) for f in files))
    return result
