"""An OpenAI Agents SDK session backed by turnstate: `pip install turnstate[openai-agents]`.

    session = TurnstateSession("session-1", store)
    result = await Runner.run(agent, "Hello", session=session)

Each item of a run (user and assistant messages, tool calls, tool outputs) is stored, in order,
as its JSON in one turnstate message with a matching role.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from agents.items import TResponseInputItem
from agents.memory.session_settings import SessionSettings, resolve_session_limit

from turnstate.integrations._common import append_all, held, message_id
from turnstate.store import Store


def _role(item: Mapping[str, Any]) -> str:
    """A message keeps its role (developer counts as system); a tool's output is `tool`; other items are the model's."""
    role = item.get("role")
    if role in ("user", "assistant", "system"):
        return str(role)
    if role == "developer":
        return "system"
    if str(item.get("type", "")).endswith("_output"):
        return "tool"
    return "assistant"


class TurnstateSession:
    """The Agents SDK's `Session` protocol on a turnstate Store: bounded, race-free across processes.

    `get_items` returns the session's hot items (the newest `max_messages`, as configured); older
    items wait in the archive for the summariser. No local lock: every append is one server-side
    script assigning the next sequence number, so two runs on one session from any number of
    processes lose nothing (their items may interleave, each in its own order).

    With `include_summary`, a full read (no limit) starts with a system item holding the session's
    rolling summary, when it has one: the context the bounded list no longer carries. It costs a
    second request, sent concurrently with the read.
    """

    def __init__(
        self,
        session_id: str,
        store: Store,
        *,
        tenant: str | None = None,
        session_settings: SessionSettings | None = None,
        include_summary: bool = False,
    ) -> None:
        self.session_id = session_id
        self.store = store
        self.tenant = tenant
        self.session_settings = session_settings
        self.include_summary = include_summary

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is not None and limit <= 0:
            return []
        summary = None
        if self.include_summary and limit is None:
            reads = held(self.store, self.session_id, self.tenant), self.store.info(self.session_id, tenant=self.tenant)
            stored, info = await asyncio.gather(*reads)
            summary = info.summary
        else:
            stored = await held(self.store, self.session_id, self.tenant, limit)
        items: list[TResponseInputItem] = [json.loads(m.content) for m in stored]
        if summary:
            items.insert(0, {"role": "system", "content": f"Summary of the earlier conversation: {summary}"})
        return items

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        rows = [(_role(item), json.dumps(item), message_id(item.get("id"))) for item in items]
        await append_all(self.store, self.session_id, self.tenant, rows)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item, in one script: of two racing pops, each gets its own item."""
        popped = await self.store.pop(self.session_id, tenant=self.tenant)
        return None if popped is None else json.loads(popped.content)

    async def clear_session(self) -> None:
        await self.store.delete(self.session_id, tenant=self.tenant)
