"""`turnstate demo`: a short scripted conversation that makes the turn protocol visible.

It shows the prompt window and the archive as the conversation outgrows the hot list, then races
16 turns of one session through each of the article's patterns and through turnstate.
"""

from __future__ import annotations

import uuid

from rich.console import Console
from rich.table import Table

from turnstate.config import Settings
from turnstate.patterns import all_patterns
from turnstate.race import run_race
from turnstate.store import Store, open_store
from turnstate.types import Turn

SCRIPT = [
    "Hi! I'm planning a trip to Lisbon in May.",
    "I prefer small hotels over big chains.",
    "My budget is about 150 euros a night.",
    "Which neighbourhood is best for walking?",
    "Can you suggest a day trip?",
    "What should I pack?",
]
RACERS = 16


def demo_model(turn: Turn) -> str:
    """A stand-in for the model that says what context it was given, so the state is visible."""
    return (
        f"(demo model, no LLM) I was given {len(turn.messages)} messages "
        f"(seq {turn.messages[0].seq}-{turn.messages[-1].seq}); you said: {turn.messages[-1].content!r}"
    )


async def conversation(store: Store, console: Console, session: str) -> None:
    s = store.settings
    console.rule(f"A conversation: window {s.window_messages} messages, hot list {s.max_messages}")
    table = Table("turn", "user seq", "window sent to the model", "hot", "archived", "reply seq")
    for n, line in enumerate(SCRIPT, start=1):
        turn = await store.begin_turn(session, line, message_id=f"demo-{n}")
        reply = await store.finish_turn(turn, demo_model(turn))
        info = await store.info(session)
        window = f"seq {turn.messages[0].seq}..{turn.messages[-1].seq} ({len(turn.messages)} msgs)"
        table.add_row(str(n), str(turn.seq), window, str(info.hot), str(info.archived), str(reply.seq))
    console.print(table)
    history = await store.history(session)
    info = await store.info(session)
    console.print(f"Archive (evicted from the hot list, kept for the summariser): {info.archived} messages")
    for m in history[: info.archived]:
        console.print(f"  [dim]#{m.seq} {m.role}:[/dim] {m.content[:70]}")
    console.print(f"Hot list: seq {history[info.archived].seq}..{history[-1].seq}; nothing was dropped.")
    retry = await store.begin_turn(session, SCRIPT[-1], message_id=f"demo-{len(SCRIPT)}")
    console.print(
        f"Retrying message demo-{len(SCRIPT)} returns its stored reply #{retry.reply.seq if retry.reply else '?'}"
    )


async def race(store: Store, console: Console, run: str) -> None:
    console.rule(f"A race: {RACERS} concurrent turns on one session, per pattern")
    table = Table("pattern", "stored", "lost", "duplicated", "misordered", "prompts on a stale snapshot")
    # The article's defaults (window 20, 50 kept): room for all 32 messages, so losses are real.
    racing = Store(store.client, Settings(key_prefix=store.settings.key_prefix, tenant=store.settings.tenant))
    for pattern in all_patterns(racing):
        session = f"{run}-race-{pattern.name}"
        report = await run_race(pattern, session, turns=RACERS)
        r = report.result
        style = "green" if r.clean else "red"
        table.add_row(
            pattern.name,
            f"{report.stored}/{2 * RACERS}",
            f"[{style}]{r.lost}[/{style}]",
            str(r.duplicated),
            str(r.misordered),
            str(report.shared_snapshots),
        )
        await pattern.delete(session)
    console.print(table)
    console.print(
        "json-blob: every turn read the same history, so the last write won.\n"
        "list, atomic-lua: nothing lost, but replies land after other turns' questions.\n"
        "bounded: all stored, yet every prompt was built from a snapshot missing the racing turns.\n"
        "turnstate (policy queue): one turn at a time, each prompt complete, each reply after its question."
    )


async def run_demo(settings: Settings | None = None, console: Console | None = None) -> None:
    console = console or Console()
    settings = settings or Settings(window_messages=6, max_messages=8)
    async with await open_store(settings=settings) as store:
        where = "embedded Valkey" if settings.redis_url is None else "configured server"
        console.print(f"turnstate demo on the {where} at [bold]{store.address}[/bold]")
        run = f"demo-{uuid.uuid4().hex[:8]}"
        try:
            await conversation(store, console, f"{run}-chat")
            await race(store, console, run)
        finally:
            await store.delete(f"{run}-chat")
