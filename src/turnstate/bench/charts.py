"""Charts of a run, as PNG files: latency and bytes vs history length, latency vs added RTT, race damage.

matplotlib is an optional dependency (`pip install 'turnstate[bench]'`); without it the bench
writes its tables and JSON and says the charts were skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnstate.bench.results import BenchResult, Measurement


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _lines(
    ax: Any, cells: list[Measurement], x: Callable[[Measurement], float], y: Callable[[Measurement], float | None]
) -> None:
    for name in dict.fromkeys(m.pattern for m in cells):
        points = sorted((x(m), v) for m in cells if m.pattern == name and (v := y(m)) is not None)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")


def _plain_log(ax: Any, xs: list[float]) -> None:
    """Log-log axes labelled with plain numbers, the x ticks at the measured points."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set(xscale="log", yscale="log")
    ax.set_xticks(xs)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def write_charts(result: BenchResult, folder: Path) -> list[Path]:
    """Write the charts into `folder`; return their paths (none when matplotlib is missing)."""
    if not available():
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if result.latency:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        _lines(left, result.latency, lambda m: m.history, lambda m: m.latency.p50_us / 1000)
        histories = sorted({float(m.history) for m in result.latency})
        _plain_log(left, histories)
        left.set(xlabel="messages of history", ylabel="p50 per turn (ms)")
        left.set_title("Latency vs history length")
        _lines(right, result.latency, lambda m: m.history, lambda m: m.wire.bytes_total / 1000 if m.wire else None)
        _plain_log(right, histories)
        right.set(xlabel="messages of history", ylabel="KB on the wire per turn")
        right.set_title("Bytes vs history length")
        save(fig, "latency-vs-history.png")
    if result.rtt:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        _lines(ax, result.rtt, lambda m: m.delay_ms, lambda m: m.latency.p50_us / 1000)
        ax.set(xlabel="added round-trip time (ms)", ylabel="p50 per turn (ms)")
        ax.set_title("Latency vs added round-trip time")
        save(fig, "latency-vs-rtt.png")
    if result.race:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        names = [r.pattern for r in result.race]
        kinds = [("lost", [r.lost for r in result.race]), ("duplicated", [r.duplicated for r in result.race]),
                 ("misordered", [r.misordered for r in result.race]),
                 ("stale prompts", [r.shared_snapshots for r in result.race])]  # fmt: skip
        width = 0.2
        for i, (label, values) in enumerate(kinds):
            ax.bar([j + (i - 1.5) * width for j in range(len(names))], values, width, label=label)
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize="small")
        first = result.race[0]
        ax.set(
            ylabel="messages (prompts)", title=f"Race: {first.rounds} x {first.turns} concurrent turns on one session"
        )
        ax.legend(fontsize="small")
        save(fig, "race.png")
    return written
