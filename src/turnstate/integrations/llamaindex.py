"""LlamaIndex chat store backed by turnstate: `pip install turnstate[llamaindex]`.

    chat_store = TurnstateChatStore(turnstate.connect_sync())
    memory = ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key="session-1")

A key is a turnstate session id. Each message is stored as LlamaIndex's own JSON
(`ChatMessage.model_dump_json`), so content blocks and `additional_kwargs` round-trip.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.storage.chat_store import BaseChatStore
from pydantic import PrivateAttr

from turnstate.integrations._common import Bridge, append_all, held, message_id, session_ids
from turnstate.sync import SyncStore

_ROLES = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.FUNCTION: "tool",
    MessageRole.TOOL: "tool",
}


class TurnstateChatStore(BaseChatStore):
    """Chat histories bounded to `max_messages` per key, appended atomically across processes.

    `get_messages` returns the key's hot messages (the newest `max_messages`); older ones wait in
    the archive for the summariser. `set_messages` replaces a key's history in two steps (delete,
    then append), so a writer racing with it may have its message removed.
    """

    tenant: str | None = None
    _bridge: Bridge = PrivateAttr()

    def __init__(self, store: SyncStore, *, tenant: str | None = None, **data: Any) -> None:
        super().__init__(**data)
        self.tenant = tenant
        self._bridge = Bridge(store)

    @classmethod
    def class_name(cls) -> str:
        return "TurnstateChatStore"

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        self._bridge.wait(self._set(key, messages))

    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        await self._bridge.wait_async(self._set(key, messages))

    def get_messages(self, key: str) -> list[ChatMessage]:
        return self._bridge.wait(self._get(key))

    async def aget_messages(self, key: str) -> list[ChatMessage]:
        return await self._bridge.wait_async(self._get(key))

    def add_message(self, key: str, message: ChatMessage) -> None:
        self._bridge.wait(self._add(key, [message]))

    async def async_add_message(self, key: str, message: ChatMessage) -> None:
        await self._bridge.wait_async(self._add(key, [message]))

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        return self._bridge.wait(self._delete(key))

    async def adelete_messages(self, key: str) -> list[ChatMessage] | None:
        return await self._bridge.wait_async(self._delete(key))

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        return self._bridge.wait(self._delete_at(key, idx))

    async def adelete_message(self, key: str, idx: int) -> ChatMessage | None:
        return await self._bridge.wait_async(self._delete_at(key, idx))

    def delete_last_message(self, key: str) -> ChatMessage | None:
        return self._bridge.wait(self._pop(key))

    async def adelete_last_message(self, key: str) -> ChatMessage | None:
        return await self._bridge.wait_async(self._pop(key))

    def get_keys(self) -> list[str]:
        return self._bridge.wait(session_ids(self._bridge.store, self.tenant))

    async def aget_keys(self) -> list[str]:
        return await self._bridge.wait_async(session_ids(self._bridge.store, self.tenant))

    async def _get(self, key: str) -> list[ChatMessage]:
        stored = await held(self._bridge.store, key, self.tenant)
        return [ChatMessage.model_validate_json(m.content) for m in stored]

    async def _add(self, key: str, messages: list[ChatMessage]) -> None:
        rows = [(_ROLES.get(m.role, "assistant"), m.model_dump_json(), message_id(None)) for m in messages]
        await append_all(self._bridge.store, key, self.tenant, rows)

    async def _set(self, key: str, messages: list[ChatMessage]) -> None:
        await self._bridge.store.delete(key, tenant=self.tenant)
        await self._add(key, messages)

    async def _delete_at(self, key: str, idx: int) -> ChatMessage | None:
        """Remove the idx-th message of `get_messages`: found by one read, removed by its seq.

        A message appended in between does not shift the target: seqs never change.
        """
        stored = await held(self._bridge.store, key, self.tenant)
        if not -len(stored) <= idx < len(stored):
            return None
        removed = await self._bridge.store.remove(key, stored[idx].seq, tenant=self.tenant)
        return None if removed is None else ChatMessage.model_validate_json(removed.content)

    async def _pop(self, key: str) -> ChatMessage | None:
        removed = await self._bridge.store.pop(key, tenant=self.tenant)
        return None if removed is None else ChatMessage.model_validate_json(removed.content)

    async def _delete(self, key: str) -> list[ChatMessage] | None:
        messages = await self._get(key)
        await self._bridge.store.delete(key, tenant=self.tenant)
        return messages or None
