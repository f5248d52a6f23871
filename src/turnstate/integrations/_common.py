"""What the framework adapters share: the bounded view, message ids, and the sync/async bridge."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from turnstate.errors import InvalidInput
from turnstate.keys import session_of, sessions_pattern, validate_message_id
from turnstate.store import MAX_BATCH, Store
from turnstate.sync import SyncStore
from turnstate.types import Message

T = TypeVar("T")


def message_id(candidate: object) -> str:
    """The framework's own id when turnstate accepts it (so a re-sent message is stored once), else a fresh one."""
    try:
        return validate_message_id(candidate)
    except InvalidInput:
        return uuid.uuid4().hex


async def held(store: Store, session: str, tenant: str | None, limit: int | None = None) -> list[Message]:
    """The session's newest hot messages (all of them, or `limit`), oldest first, in one request.

    At most `max_messages`, as configured: older messages wait in the archive for the summariser,
    and a framework replaying its history into every prompt should see the bounded list.
    """
    return await store.recent(session, limit, tenant=tenant)


async def append_all(store: Store, session: str, tenant: str | None, rows: list[tuple[str, str, str]]) -> None:
    """Append (role, content, message id) rows in order: one script per MAX_BATCH rows, each idempotent."""
    for start in range(0, len(rows), MAX_BATCH):
        await store.append_many(session, rows[start : start + MAX_BATCH], tenant=tenant)


async def session_ids(store: Store, tenant: str | None) -> list[str]:
    """Every session of a tenant that holds something, found with SCAN (never KEYS)."""
    tenant = store.settings.tenant if tenant is None else tenant
    prefix = store.settings.key_prefix
    found: set[str] = set()
    async for key in store.client.scan_iter(sessions_pattern(prefix, tenant)):
        found.add(session_of(key.decode() if isinstance(key, bytes) else key, prefix, tenant))
    return sorted(found)


class Bridge:
    """Runs one async implementation for both a framework's sync and async methods, on a SyncStore's loop."""

    def __init__(self, store: SyncStore) -> None:
        self.sync = store
        self.store = store.store

    def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.sync.submit(coro).result()

    async def wait_async(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.sync.submit(coro))
