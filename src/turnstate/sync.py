"""A synchronous facade over the asyncio Store, for code that is not async.

It runs one event loop on a private daemon thread and hands each call to it, so it works the
same from plain scripts, threads and frameworks that already run their own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from turnstate.config import Settings
from turnstate.store import Store, open_store
from turnstate.tokens import TokenCounter
from turnstate.types import Message, Policy, SessionInfo, Turn

T = TypeVar("T")


class SyncStore:
    """The Store's methods, blocking. Create one per process and share it."""

    def __init__(
        self, url: str | None = None, *, settings: Settings | None = None, token_counter: TokenCounter | None = None
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="turnstate-sync", daemon=True)
        self._thread.start()
        try:
            self.store: Store = self._run(open_store(url, settings=settings, token_counter=token_counter))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on `self.store` in the store's loop; for adapters offering sync and async APIs.

        Await it from another loop with `asyncio.wrap_future`, or block on `.result()`.
        """
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def begin_turn(
        self,
        session: str,
        content: str,
        *,
        message_id: str | None = None,
        tenant: str | None = None,
        policy: Policy | str | None = None,
    ) -> Turn:
        return self._run(self.store.begin_turn(session, content, message_id=message_id, tenant=tenant, policy=policy))

    def finish_turn(self, turn: Turn, content: str) -> Message:
        return self._run(self.store.finish_turn(turn, content))

    def abort_turn(self, turn: Turn) -> bool:
        return self._run(self.store.abort_turn(turn))

    def append(
        self,
        session: str,
        role: str,
        content: str,
        *,
        message_id: str | None = None,
        tenant: str | None = None,
        turn: Turn | None = None,
    ) -> Message:
        return self._run(self.store.append(session, role, content, message_id=message_id, tenant=tenant, turn=turn))

    def append_many(
        self,
        session: str,
        messages: Sequence[tuple[str, str] | tuple[str, str, str | None]],
        *,
        tenant: str | None = None,
        turn: Turn | None = None,
    ) -> list[Message]:
        return self._run(self.store.append_many(session, messages, tenant=tenant, turn=turn))

    def remove(
        self, session: str, seq: int | None = None, *, tenant: str | None = None, turn: Turn | None = None
    ) -> Message | None:
        return self._run(self.store.remove(session, seq, tenant=tenant, turn=turn))

    def pop(self, session: str, *, tenant: str | None = None, turn: Turn | None = None) -> Message | None:
        return self._run(self.store.pop(session, tenant=tenant, turn=turn))

    def recent(self, session: str, limit: int | None = None, *, tenant: str | None = None) -> list[Message]:
        return self._run(self.store.recent(session, limit, tenant=tenant))

    def history(self, session: str, *, tenant: str | None = None) -> list[Message]:
        return self._run(self.store.history(session, tenant=tenant))

    def info(self, session: str, *, tenant: str | None = None) -> SessionInfo:
        return self._run(self.store.info(session, tenant=tenant))

    def delete(self, session: str, *, tenant: str | None = None) -> bool:
        return self._run(self.store.delete(session, tenant=tenant))

    def close(self) -> None:
        """Close the store (stopping an embedded server it started) and its loop thread."""
        if self._loop.is_running():
            self._run(self.store.aclose())
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_sync(
    url: str | None = None, *, settings: Settings | None = None, token_counter: TokenCounter | None = None
) -> SyncStore:
    """The blocking counterpart of `connect()`: `with turnstate.connect_sync() as store: ...`."""
    return SyncStore(url, settings=settings, token_counter=token_counter)
