"""`turnstate memory ...`: look at and prune what long-term memory keeps, from the command line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rich.console import Console

from turnstate.config import Settings
from turnstate.memory.embedder import Embedder, embedder_from_settings
from turnstate.memory.facts import Fact
from turnstate.memory.vectors import FactStore, open_fact_store


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[tuple[FactStore, Embedder]]:
    embedder = embedder_from_settings(settings)
    try:
        async with await open_fact_store(settings, embedder.dim, model=embedder.name) as facts:
            yield facts, embedder
    finally:
        await embedder.aclose()


def show(console: Console, fact: Fact, score: float | None = None) -> None:
    mark = "" if fact.current else " [dim](superseded)[/dim]"
    scored = f" [dim]{score:.3f}[/dim]" if score is not None else ""
    console.print(f"#{fact.id}{scored} [bold]{fact.key}[/bold]: {fact.text}{mark}", highlight=False)


async def list_facts(
    settings: Settings, console: Console, tenant: str | None, user: str, *, include_superseded: bool
) -> None:
    async with opened(settings) as (facts, _):
        found = await facts.list_facts(tenant or settings.tenant, user_id=user, include_superseded=include_superseded)
        for fact in found:
            show(console, fact)
        if not found:
            console.print(f"no facts about {user}")


async def search_facts(settings: Settings, console: Console, tenant: str | None, user: str, query: str, k: int) -> None:
    async with opened(settings) as (facts, embedder):
        vector = (await embedder.embed_queries([query]))[0]
        for scored in await facts.recall(tenant or settings.tenant, user, vector, k):
            show(console, scored.fact, scored.score)


async def delete_facts(settings: Settings, console: Console, tenant: str | None, user: str, fact: int | None) -> None:
    async with opened(settings) as (facts, _):
        tenant = tenant or settings.tenant
        if fact is None:
            console.print(f"forgot {await facts.delete_user(tenant, user)} facts about {user}")
            return
        gone = await facts.delete_fact(tenant, fact, user_id=user)
        console.print(f"forgot fact #{fact}" if gone else f"{user} has no fact #{fact}")
