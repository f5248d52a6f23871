"""Long-term memory on the critical path: what reading a summary adds to a turn.

turnstate reads the summary inside `begin_turn`'s script, so a turn with a summary costs the same
two round trips as one without; only the summary's bytes are added. The article's pattern 4 reads
it with a separate GET before prompting, and checks the list length (LLEN) after the reply to
decide whether to enqueue a summary job: two more commands and two more round trips per turn.

Recall (facts from a vector store, fetched beside `begin_turn`) is measured in `recall_turn.py`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from turnstate.config import Settings
from turnstate.keys import session_keys
from turnstate.patterns import AtomicLuaPattern, Handle, TurnstatePattern

SUMMARY_BYTES = 1200


class ArticleMemoryPattern(AtomicLuaPattern):
    """The article's pattern 4 around the model call: the atomic step plus its memory reads."""

    name = "atomic-lua+memory"

    def summary_key(self, session: str) -> str:
        return f"{self.key(session).rsplit(':', 1)[0]}:summary"

    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        handle = await super().begin(session, content, message_id)
        summary = await self.client.get(self.summary_key(session))
        return Handle(handle.session, handle.message_id, handle.window, state=summary)

    async def finish(self, handle: Handle, reply: str) -> None:
        await super().finish(handle, reply)
        await self.client.llen(self.key(handle.session))  # the article's "every 10 messages" trigger

    async def delete(self, session: str) -> None:
        await self.client.delete(self.key(session), self.summary_key(session))


async def plant_summary(
    client: aioredis.Redis, settings: Settings, session: str, text: str, tokens: int, upto: int
) -> None:
    """Store a summary where turnstate's scripts read it: a stand-in for the summariser's commit.

    The summariser (long-term memory) is not written yet; these are the fields `begin_turn` reads.
    """
    meta = session_keys(settings.key_prefix, settings.tenant, session).meta
    await client.hset(meta, mapping={"summary": text, "summary_upto": upto, "summary_tokens": tokens})


async def plant_article_summary(pattern: ArticleMemoryPattern, session: str, text: str) -> None:
    await pattern.client.set(pattern.summary_key(session), text, ex=pattern.settings.ttl_seconds)


def summary_seen(pattern: TurnstatePattern | ArticleMemoryPattern, handle: Handle) -> str | None:
    """The summary a turn was given, to check the variant really carries one."""
    if isinstance(pattern, TurnstatePattern):
        summary: str | None = handle.state.summary
        return summary
    raw = handle.state
    return raw.decode() if isinstance(raw, bytes) else raw
