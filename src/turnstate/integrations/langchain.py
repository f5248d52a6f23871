"""LangChain chat history backed by turnstate: `pip install turnstate[langchain]`.

    history = TurnstateChatMessageHistory(turnstate.connect_sync(), "session-1")

Works wherever LangChain takes a `BaseChatMessageHistory`, such as `RunnableWithMessageHistory`.
Each message is stored as LangChain's own dict (`message_to_dict`), so every message type and its
fields (ids, tool calls, metadata) come back as they went in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from turnstate.integrations._common import Bridge, append_all, held, message_id
from turnstate.sync import SyncStore

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def _role(message: BaseMessage) -> str:
    """turnstate's role for a message; a generic ChatMessage keeps its own role when turnstate knows it."""
    role = getattr(message, "role", None) if message.type == "chat" else None
    if role in ("user", "assistant", "system", "tool"):
        return str(role)
    return _ROLES.get(message.type.removesuffix("Chunk").lower().removesuffix("message"), "user")


class TurnstateChatMessageHistory(BaseChatMessageHistory):
    """One session's messages: bounded to `max_messages`, appended atomically, a message id stored once.

    Reads return the session's hot messages (the newest `max_messages`); older ones wait in the
    archive for the summariser. Two processes adding to one session never lose a message: each
    append is one server-side script that assigns the next sequence number.
    """

    def __init__(self, store: SyncStore, session_id: str, *, tenant: str | None = None) -> None:
        self._bridge = Bridge(store)
        self.session_id = session_id
        self.tenant = tenant

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return self._bridge.wait(self._read())

    async def aget_messages(self) -> list[BaseMessage]:
        return await self._bridge.wait_async(self._read())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self._bridge.wait(self._add(messages))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        await self._bridge.wait_async(self._add(messages))

    def clear(self) -> None:
        self._bridge.wait(self._clear())

    async def aclear(self) -> None:
        await self._bridge.wait_async(self._clear())

    async def _read(self) -> list[BaseMessage]:
        stored = await held(self._bridge.store, self.session_id, self.tenant)
        return messages_from_dict([json.loads(m.content) for m in stored])

    async def _add(self, messages: Sequence[BaseMessage]) -> None:
        rows = [(_role(m), json.dumps(message_to_dict(m)), message_id(m.id)) for m in messages]
        await append_all(self._bridge.store, self.session_id, self.tenant, rows)

    async def _clear(self) -> None:
        await self._bridge.store.delete(self.session_id, tenant=self.tenant)
