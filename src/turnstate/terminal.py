"""`turnstate chat`: a conversation in the terminal, streamed, with the state one command away."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

from rich.console import Console

from turnstate.chat import Chat
from turnstate.config import Settings
from turnstate.errors import InvalidInput, ModelError, SessionBusy
from turnstate.runtime import open_runtime
from turnstate.types import Turn

HELP = "/window shows the last prompt window, /summary the summary, /history everything held, /quit ends"


def show_window(console: Console, turn: Turn | None) -> None:
    if turn is None:
        console.print("[dim]no turn yet[/dim]")
        return
    console.print(f"[dim]window of turn #{turn.seq}: {len(turn.messages)} messages[/dim]")
    for m in turn.messages:
        console.print(f"  [dim]#{m.seq} {m.role} ({m.tokens} tokens):[/dim] {m.content[:100]}", highlight=False)


async def chat_loop(settings: Settings, session: str, console: Console) -> None:
    async with AsyncExitStack() as stack:
        chat = (await open_runtime(settings, stack, worker=True)).chat
        memory = "on" if chat.recall else "off"
        console.print(
            f"session [bold]{session}[/bold] on {chat.store.address}, model {chat.model.name}, memory {memory}."
        )
        console.print(HELP)
        last: Turn | None = None
        while True:
            try:
                line = (await asyncio.to_thread(console.input, "[bold green]you>[/bold green] ")).strip()
            except EOFError:
                break
            if line in ("/quit", "/exit"):
                break
            if line == "/window":
                show_window(console, last)
            elif line == "/summary":
                info = await chat.store.info(session)
                console.print(info.summary or "[dim]no summary yet[/dim]", highlight=False)
            elif line == "/history":
                for m in await chat.store.history(session):
                    console.print(f"[dim]#{m.seq}[/dim] {m.role}: {m.content}", highlight=False)
            elif line.startswith("/"):
                console.print(HELP)
            elif line:
                last = await one_turn(chat, console, session, line) or last


async def one_turn(chat: Chat, console: Console, session: str, line: str) -> Turn | None:
    try:
        stream = await chat.stream(session, line, message_id=uuid.uuid4().hex)
        console.print("[bold blue]bot>[/bold blue] ", end="")
        async for delta in stream:
            console.print(delta, end="", markup=False, highlight=False)
        console.print()
        await stream.result()
    except (InvalidInput, SessionBusy, ModelError) as exc:
        console.print(f"\n[red]{exc}[/red]")
        return None
    return stream.turn
