"""The servers the memory benchmarks run on, and the settings that keep each run apart from any other.

With TURNSTATE_REDIS_URL / TURNSTATE_DATABASE_URL set, those servers; otherwise a Valkey and a
PostgreSQL with pgvector are started in a temporary directory and removed afterwards, so a run
never touches the embedded servers (and memories) kept in the user's data directory. Each run
writes under a fresh key prefix and tenant and deletes what it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from turnstate.bench.core import bench_database, bench_server
from turnstate.config import Settings
from turnstate.memory.vectors import FactStore
from turnstate.store import Store
from turnstate.worker import docket_name

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@asynccontextmanager
async def memory_backends(settings: Settings) -> AsyncIterator[Settings]:
    """`settings` with both URLs set: the configured servers, else embedded ones for the duration of the block."""
    async with AsyncExitStack() as stack:
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        redis_url = stack.enter_context(bench_server(redis_url))
        database_url = settings.database_url.get_secret_value() if settings.database_url else None
        database_url = await stack.enter_async_context(bench_database(database_url))
        yield settings.model_copy(update={"redis_url": SecretStr(redis_url), "database_url": SecretStr(database_url)})


def fresh(settings: Settings, **overrides: object) -> Settings:
    """A copy with a new key prefix and tenant, and the offline model and embedder whatever the environment says.

    The figures are for the offline pipeline; an OPENAI_API_KEY in the environment must not turn
    the extractor into a model call.
    """
    run = uuid.uuid4().hex[:10]
    offline: dict[str, object] = {
        "openai_api_key": None,
        "openai_base_url": None,
        "embeddings": "offline",
        "embedding_api_key": None,
        "embedding_base_url": None,
    }
    return settings.model_copy(update={"key_prefix": f"mem{run}", "tenant": f"mem{run}", **offline, **overrides})


async def forget_run(settings: Settings, store: Store, facts: FactStore | None, users: Iterable[str]) -> None:
    """Delete what a run wrote: every Redis key under its prefix (sessions and job queue), and its users' facts."""
    keys = []
    for pattern in (f"{settings.key_prefix}:*", f"{docket_name(settings)}*"):
        keys += [key async for key in store.client.scan_iter(match=pattern, count=1000)]
    for start in range(0, len(keys), 500):
        await store.client.delete(*keys[start : start + 500])
    if facts is not None:
        for user in users:
            await facts.delete_user(settings.tenant, user)


def write_json(path: Path, result: DataclassInstance) -> None:
    """A benchmark's result dataclass as JSON, for the record beside the printed table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result), indent=1) + "\n", encoding="utf-8")
