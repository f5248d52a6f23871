"""`turnstate doctor`: is the configuration usable, and do the servers answer?"""

from __future__ import annotations

from rich.console import Console

from turnstate import scripts
from turnstate.config import Settings
from turnstate.connection import unavailable_as
from turnstate.errors import TurnstateError
from turnstate.llm import complete, model_from_settings
from turnstate.store import open_store


def _line(console: Console, ok: bool, what: str, detail: str) -> None:
    mark = "[green]ok[/green]  " if ok else "[red]FAIL[/red]"
    console.print(f"{mark} {what}: {detail}", highlight=False)


async def diagnose(settings: Settings, console: Console) -> None:
    """Print one line per check; raise TurnstateError if any failed."""
    failed = []
    where = "embedded Valkey in " + str(settings.data_dir / "valkey") if settings.redis_url is None else "configured"
    _line(console, True, "settings", f"state store {where}; tenant {settings.tenant}; policy {settings.policy}")
    try:
        async with await open_store(settings=settings) as store:
            async with unavailable_as(store.address):
                server = await store.client.info("server")
                loaded = await scripts.ensure_loaded(store.client)
            version = server.get("valkey_version") or server.get("redis_version")
            _line(
                console,
                True,
                "state store",
                f"{store.address} answers ({server.get('server_name', 'redis')} {version})",
            )
            _line(console, True, "scripts", f"{len(loaded)} loaded")
    except TurnstateError as exc:
        failed.append("state store")
        _line(console, False, "state store", str(exc))
    if settings.memory:
        failed += await _check_memory(settings, console)
    else:
        _line(console, True, "memory", "off (TURNSTATE_MEMORY=false): PostgreSQL and the embedder not checked")
    model = model_from_settings(settings)
    try:
        reply = await complete(model, [{"role": "user", "content": "Reply with the word: ready"}])
        _line(console, True, "model", f"{model.name} answered ({len(reply)} characters)")
    except TurnstateError as exc:
        failed.append("model")
        _line(console, False, "model", str(exc))
    finally:
        await model.aclose()
    if failed:
        raise TurnstateError(f"{len(failed)} check(s) failed: {', '.join(failed)}")


async def _check_memory(settings: Settings, console: Console) -> list[str]:
    """The embedder embeds one query; PostgreSQL (configured or embedded) opens, migrates and answers."""
    from turnstate.memory.embedder import embedder_from_settings  # imported here: memory is optional
    from turnstate.memory.vectors import open_fact_store

    embedder = embedder_from_settings(settings)
    try:
        vectors = await embedder.embed_queries(["doctor"])
        _line(console, True, "embedder", f"{embedder.name} embeds ({len(vectors[0])} dimensions)")
    except TurnstateError as exc:
        _line(console, False, "embedder", str(exc))
        return ["embedder"]
    finally:
        await embedder.aclose()
    try:
        facts = await open_fact_store(settings, embedder.dim, model=embedder.name)
        try:
            if not await facts.ping():
                raise TurnstateError(f"{facts.address} does not answer")
            _line(console, True, "PostgreSQL", f"{facts.address} answers (facts schema ready)")
        finally:
            await facts.aclose()
    except TurnstateError as exc:
        _line(console, False, "PostgreSQL", str(exc))
        return ["PostgreSQL"]
    return []
