"""The article's four patterns, written as it writes them, beside turnstate's own protocol.

They share one small interface, so the benchmark and the race tests drive all five the same
way: `begin` does what a pattern does before the model call and returns the prompt window,
`finish` does what it does after. Each article pattern keeps the article's behaviour, flaws
included (a lost message, an interleaved reply, a window one message longer than asked for):
they are here to be compared, not to be used.

Every stored article message is compact JSON `{"id", "role", "content"}`; a reply's id is
`<user message id>:reply`, as turnstate's is, so a race checker can pair them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from turnstate.config import Settings
from turnstate.keys import validate_id
from turnstate.scripts import Script
from turnstate.store import Store
from turnstate.types import Message, Policy

ChatMessage = dict[str, Any]

ARTICLE_UPDATE_CHAT = Script.load("article_update_chat", prelude=False)


def article_key(prefix: str, tenant: str, session: str) -> str:
    """The one key an article pattern uses for a session, hash-tagged like turnstate's keys."""
    validate_id(tenant, "tenant id")
    validate_id(session, "session id")
    return f"{prefix}:{{{tenant}:{session}}}:article"


def reply_id(message_id: str) -> str:
    """The id every pattern gives the reply to `message_id` (turnstate's default too)."""
    return f"{message_id}:reply"


def user_message(message_id: str, content: str) -> ChatMessage:
    return {"id": message_id, "role": "user", "content": content}


def reply_message(message_id: str, content: str) -> ChatMessage:
    """The reply to the user message `message_id`."""
    return {"id": reply_id(message_id), "role": "assistant", "content": content}


def encode(message: ChatMessage | list[ChatMessage]) -> str:
    """Compact JSON, as the article's JSON.stringify writes it."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def decode_newest_first(raws: Sequence[bytes | str]) -> list[ChatMessage]:
    """A newest-first LRANGE reply as chronological messages."""
    return [json.loads(raw) for raw in reversed(raws)]


@dataclass(frozen=True, slots=True)
class Handle:
    """What `begin` hands to `finish`: the prompt window (oldest first) and the pattern's state."""

    session: str
    message_id: str
    window: list[ChatMessage]
    state: Any = None


class ChatPattern(ABC):
    """One way to keep a conversation: what happens before and after the model call."""

    name: str

    @abstractmethod
    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        """Store or read what the pattern does before the model call; return the window."""

    @abstractmethod
    async def finish(self, handle: Handle, reply: str) -> None:
        """Store what the pattern stores after the model call."""

    @abstractmethod
    async def history(self, session: str) -> list[ChatMessage]:
        """Everything stored for the session, oldest first, each with id, role and content."""

    @abstractmethod
    async def delete(self, session: str) -> None:
        """Remove everything the pattern stored for the session."""


class ArticlePattern(ChatPattern):
    """What the article's patterns share: one key per session, a List of JSON messages."""

    def __init__(self, client: aioredis.Redis, settings: Settings | None = None) -> None:
        self.client = client
        self.settings = settings or Settings()

    def key(self, session: str) -> str:
        return article_key(self.settings.key_prefix, self.settings.tenant, session)

    async def history(self, session: str) -> list[ChatMessage]:
        return decode_newest_first(await self.client.lrange(self.key(session), 0, -1))

    async def delete(self, session: str) -> None:
        await self.client.delete(self.key(session))

    async def push_reply(self, handle: Handle, reply: str) -> None:
        """The article's last step in patterns 2 and 4: a bare LPUSH of the reply."""
        message = reply_message(handle.message_id, reply)
        await self.client.lpush(self.key(handle.session), encode(message))


class JsonBlobPattern(ArticlePattern):
    """Pattern 1: GET the whole history, append in memory, SET it all back (last writer wins).

    The SET carries the TTL (the article's naive version sets none), so only the race differs.
    """

    name = "json-blob"

    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        raw = await self.client.get(self.key(session))
        history: list[ChatMessage] = json.loads(raw) if raw else []
        history.append(user_message(message_id, content))
        # The article prompts with the whole history: there is no window.
        return Handle(session, message_id, list(history), state=history)

    async def finish(self, handle: Handle, reply: str) -> None:
        history: list[ChatMessage] = handle.state
        history.append(reply_message(handle.message_id, reply))
        await self.client.set(self.key(handle.session), encode(history), ex=self.settings.ttl_seconds)

    async def history(self, session: str) -> list[ChatMessage]:
        raw = await self.client.get(self.key(session))
        return list(json.loads(raw)) if raw else []


class ListPattern(ArticlePattern):
    """Pattern 2: LPUSH the user message, LRANGE the window; LPUSH the reply. Unbounded, no TTL."""

    name = "list"

    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        key = self.key(session)
        await self.client.lpush(key, encode(user_message(message_id, content)))
        raws = await self.client.lrange(key, 0, self.settings.window_messages - 1)
        return Handle(session, message_id, decode_newest_first(raws))

    async def finish(self, handle: Handle, reply: str) -> None:
        await self.push_reply(handle, reply)


class BoundedPattern(ArticlePattern):
    """Pattern 3: read the window first; store user message and reply together after the model.

    As in the article, the window is `window_messages` stored messages plus the new one, and
    the closing pipeline is not a transaction: it saves round trips, it does not isolate.
    """

    name = "bounded"

    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        raws = await self.client.lrange(self.key(session), 0, self.settings.window_messages - 1)
        user = user_message(message_id, content)
        return Handle(session, message_id, [*decode_newest_first(raws), user], state=user)

    async def finish(self, handle: Handle, reply: str) -> None:
        key, s = self.key(handle.session), self.settings
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(key, encode(handle.state))
        pipe.lpush(key, encode(reply_message(handle.message_id, reply)))
        pipe.ltrim(key, 0, s.max_messages - 1)
        pipe.expire(key, s.ttl_seconds)
        await pipe.execute()


class AtomicLuaPattern(ArticlePattern):
    """Pattern 4: one script stores the user message and returns the window, atomically.

    The reply follows later with a plain LPUSH, as in the article: racing turns still
    interleave, and the reply is neither trimmed nor given a TTL.
    """

    name = "atomic-lua"

    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        s = self.settings
        body = encode(user_message(message_id, content))
        args = [body, s.window_messages, s.max_messages, s.ttl_seconds]
        raws = await ARTICLE_UPDATE_CHAT(self.client, [self.key(session)], args)
        return Handle(session, message_id, decode_newest_first(raws))

    async def finish(self, handle: Handle, reply: str) -> None:
        await self.push_reply(handle, reply)


def as_chat_message(message: Message) -> ChatMessage:
    """A turnstate Message in the article patterns' shape, with its seq and reply link."""
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "seq": message.seq,
        "reply_to": message.reply_to,
    }


class TurnstatePattern(ChatPattern):
    """turnstate's turn protocol behind the same interface: one EVALSHA before, one after."""

    def __init__(self, store: Store, policy: Policy | str | None = None) -> None:
        self.store = store
        self.policy = Policy(policy) if policy is not None else None
        self.name = "turnstate" if self.policy is None else f"turnstate-{self.policy.value}"

    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        turn = await self.store.begin_turn(session, content, message_id=message_id, policy=self.policy)
        return Handle(session, message_id, [as_chat_message(m) for m in turn.messages], state=turn)

    async def finish(self, handle: Handle, reply: str) -> None:
        await self.store.finish_turn(handle.state, reply)

    async def history(self, session: str) -> list[ChatMessage]:
        return [as_chat_message(m) for m in await self.store.history(session)]

    async def delete(self, session: str) -> None:
        await self.store.delete(session)


def all_patterns(store: Store) -> list[ChatPattern]:
    """The article's four patterns and turnstate, on the store's client and settings."""
    article = [
        cls(store.client, store.settings) for cls in (JsonBlobPattern, ListPattern, BoundedPattern, AtomicLuaPattern)
    ]
    return [*article, TurnstatePattern(store)]
