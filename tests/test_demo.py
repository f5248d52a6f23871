"""The README's main job: the demo runs end to end and shows what it promises."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from turnstate.demo import RACERS, SCRIPT, run_demo


async def test_demo_shows_window_archive_and_race(redis_url: str, make_settings: Any) -> None:
    out = io.StringIO()
    settings = make_settings(redis_url=redis_url, window_messages=6, max_messages=8)
    await run_demo(settings, Console(file=out, width=200))
    text = out.getvalue()
    assert "Archive (evicted from the hot list, kept for the summariser): 4 messages" in text
    assert SCRIPT[0] in text  # the first message is archived, not dropped
    assert f"Retrying message demo-{len(SCRIPT)} returns its stored reply #12" in text
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│ ")]
    rows = {row[0]: row[1:5] for row in cells if len(row) == 6}
    assert int(rows["json-blob"][1]) > 0  # lost
    assert rows["turnstate"] == [f"{2 * RACERS}/{2 * RACERS}", "0", "0", "0"]
