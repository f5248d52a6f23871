"""Shared test helpers: a simulated model call, and checks on stored conversations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from turnstate import Message, Store


async def one_turn(store: Store, session: str, n: int, *, think: float = 0.02, **kwargs: object) -> Message:
    """A whole turn with a simulated model call of `think` seconds."""
    turn = await store.begin_turn(session, f"question {n}", message_id=f"q-{n}", **kwargs)  # type: ignore[arg-type]
    await asyncio.sleep(think)
    return await store.finish_turn(turn, f"answer to {turn.messages[-1].content}")


def assert_consistent(messages: Sequence[Message], expected_turns: int, *, answers: bool = True) -> None:
    """Every turn stored exactly once, seqs contiguous, each reply right after its question."""
    assert [m.seq for m in messages] == list(range(messages[0].seq, messages[0].seq + len(messages)))
    users = [m for m in messages if m.role == "user"]
    ids = [m.id for m in messages]
    assert len(ids) == len(set(ids)), "duplicated messages"
    assert len(users) == expected_turns, "lost messages"
    for user, reply in zip(messages[::2], messages[1::2], strict=True):
        assert user.role == "user" and reply.role == "assistant"
        assert reply.reply_to == user.seq
        assert not answers or reply.content == f"answer to {user.content}"


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll a condition held by another process (a server, a service) until it is true."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - the state lives in another process
            await asyncio.sleep(0.02)
