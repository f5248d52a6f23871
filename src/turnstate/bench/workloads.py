"""Workloads for the benchmarks: turns of one session, run the way an application runs them.

Each workload stores a user message and its reply per turn and reports the prompt window it
got, so a benchmark can check that the variants it compares do the same job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from turnstate.config import Settings
from turnstate.keys import session_keys
from turnstate.patterns import (
    ARTICLE_UPDATE_CHAT,
    ArticlePattern,
    ChatMessage,
    ChatPattern,
    JsonBlobPattern,
    TurnstatePattern,
    article_key,
    decode_newest_first,
    encode,
    reply_message,
    user_message,
)
from turnstate.scripts import Script
from turnstate.store import Store

BARE_FINISH = Script.load("bare_finish", prelude=False)

MESSAGE_BYTES = 400
SEED_CHUNK = 1000
_PHRASE = (
    "the agent keeps a short window of recent messages and a summary of older ones so every "
    "prompt stays small while the conversation grows over days of use by many stateless replicas"
)


def text(n: int, size: int = MESSAGE_BYTES) -> str:
    """Plain English-like ASCII of exactly `size` bytes, different for each `n`."""
    words = _PHRASE.split()
    parts: list[str] = []
    length, i = 0, n
    while length < size:
        parts.append(words[i % len(words)])
        length += len(parts[-1]) + 1
        i += n % 7 + 1
    return " ".join(parts)[: size - 1] + "."


@dataclass(frozen=True, slots=True)
class Texts:
    """A few distinct user messages and replies of a fixed size, made before timing starts."""

    users: tuple[str, ...]
    replies: tuple[str, ...]

    @classmethod
    def of_size(cls, size: int) -> Texts:
        return cls(tuple(text(n, size) for n in range(16)), tuple(text(n + 100, size) for n in range(16)))

    def user(self, n: int) -> str:
        return self.users[n % len(self.users)]

    def reply(self, n: int) -> str:
        return self.replies[n % len(self.replies)]


class Workload(Protocol):
    """One way of running turns on one session, as the bench drives it."""

    marker: str  # every command a turn sends mentions it: the session's key prefix and tag

    async def turn(self, n: int) -> int:
        """Run turn `n` (user message and reply); return the size of the window it prompted with."""

    async def held(self) -> int:
        """How many messages the session's hot list holds."""

    async def delete(self) -> None: ...


class BareTurns:
    """The baseline: the article's Lua step, then the reply pushed, trimmed and expired by a script."""

    def __init__(self, client: aioredis.Redis, settings: Settings, session: str, texts: Texts) -> None:
        self.client, self.settings, self.texts = client, settings, texts
        self.key = article_key(settings.key_prefix, settings.tenant, session)
        self.marker = self.key.rsplit(":", 1)[0]

    async def turn(self, n: int) -> int:
        s, message_id = self.settings, f"m{n}"
        user = encode(user_message(message_id, self.texts.user(n)))
        raws = await ARTICLE_UPDATE_CHAT(
            self.client, [self.key], [user, s.window_messages, s.max_messages, s.ttl_seconds]
        )
        window = decode_newest_first(raws)
        reply = encode(reply_message(message_id, self.texts.reply(n)))
        await BARE_FINISH(self.client, [self.key], [reply, s.max_messages, s.ttl_seconds])
        return len(window)

    async def held(self) -> int:
        return int(await self.client.llen(self.key))

    async def delete(self) -> None:
        await self.client.delete(self.key)


class TurnstateTurns:
    """turnstate's turn protocol, as an application calls it."""

    def __init__(self, store: Store, session: str, texts: Texts) -> None:
        self.store, self.session, self.texts = store, session, texts
        self.marker = session_keys(store.settings.key_prefix, store.settings.tenant, session).msgs.rsplit(":", 1)[0]

    async def turn(self, n: int) -> int:
        begun = await self.store.begin_turn(self.session, self.texts.user(n), message_id=f"m{n}")
        await self.store.finish_turn(begun, self.texts.reply(n))
        return len(begun.messages)

    async def held(self) -> int:
        return (await self.store.info(self.session)).hot

    async def delete(self) -> None:
        await self.store.delete(self.session)


def conversation(n: int, texts: Texts) -> list[ChatMessage]:
    """`n` messages of a finished conversation (question, answer, ...), oldest first, ids `h<i>`."""
    out: list[ChatMessage] = []
    for i in range(n // 2):
        out += [user_message(f"h{i}", texts.user(i)), reply_message(f"h{i}", texts.reply(i))]
    return out


async def seed_history(pattern: ChatPattern, session: str, n: int, texts: Texts) -> None:
    """Give `session` a history of `n` messages, stored as `pattern` stores them.

    turnstate's sessions are filled through its own turns (sequence numbers, ids and archive come
    from its scripts). An article pattern's one key is written directly, as n/2 of its turns
    would leave it: filling a JSON blob turn by turn would take time quadratic in `n`.
    """
    if isinstance(pattern, TurnstatePattern):
        for i in range(n // 2):
            await pattern.finish(await pattern.begin(session, texts.user(i), f"h{i}"), texts.reply(i))
        return
    if not isinstance(pattern, ArticlePattern):
        raise TypeError(f"cannot seed a {type(pattern).__name__}")
    key, client, ttl = pattern.key(session), pattern.client, pattern.settings.ttl_seconds
    messages = conversation(n, texts)
    if isinstance(pattern, JsonBlobPattern):
        await client.set(key, encode(messages), ex=ttl)
        return
    for start in range(0, len(messages), SEED_CHUNK):  # oldest first, so the newest ends at the head
        await client.lpush(key, *(encode(m) for m in messages[start : start + SEED_CHUNK]))
    await client.expire(key, ttl)  # the article's list pattern sets none; the bench's keys never outlive it
