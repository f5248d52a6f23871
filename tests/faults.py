"""Fault-test helpers: a private Valkey that can crash and come back, and turns that keep a tally.

A test that kills or restarts a server uses its own (never the shared one, nor the machine's
Redis that TURNSTATE_TEST_REDIS_URL may name). Turns retry as a careful caller would: the same
message id after a clear turnstate error, so the tally shows what callers saw and the history
shows what was kept.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from turnstate import Message, Store, TurnstateError
from turnstate.errors import ServerUnavailable, TurnGone
from turnstate.servers import EmbeddedValkey

CALLER_BACKOFF_SECONDS = 0.05  # between a caller's own retries, so a down server is not hammered
MAX_ATTEMPTS = 200  # per step: a caller that never gets through fails the test instead of hanging
T = TypeVar("T")


class CrashableValkey:
    """A private Valkey whose process can be SIGKILLed and started again on the same port and files."""

    def __init__(self, data_dir: Path, *, persistent: bool, extra_args: Sequence[str] = ()) -> None:
        self.data_dir, self.persistent, self.extra_args = data_dir, persistent, tuple(extra_args)
        self.server = EmbeddedValkey(data_dir, persistent=persistent, extra_args=extra_args)
        self.url = self.server.start()
        self.generation = 0  # restarts so far

    def crash(self) -> None:
        self.server.kill()

    def restart(self) -> None:
        """Start it again where clients expect it (blocks for a moment: run it off the event loop)."""
        port = self.server.port
        self.server = EmbeddedValkey(self.data_dir, persistent=self.persistent, extra_args=self.extra_args, port=port)
        self.server.start()
        self.generation += 1

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Tally:
    """What callers saw: acknowledged messages (with the server generation they were stored in) and errors."""

    turns: int = 0
    acked: dict[str, tuple[int, int]] = field(default_factory=dict)  # message id -> (seq, generation)
    errors: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)  # a sample of the error messages callers got

    def error(self, exc: TurnstateError) -> None:
        self.errors[type(exc).__name__] += 1
        if len(self.messages) < 20:
            self.messages.append(str(exc))

    @property
    def answered(self) -> int:
        return sum(1 for mid in self.acked if mid.endswith(":reply"))


Fault = Callable[[str, int], Awaitable[None]]


async def no_fault(session: str, n: int) -> None:
    return None


async def careful_turn(
    store: Store, session: str, n: int, tally: Tally, *, during: Fault = no_fault, generation: Callable[[], int]
) -> None:
    """One turn, retried with the same message id after each turnstate error until it is answered.

    `during` runs between begin and finish: a fault injected there strikes with the turn in flight.
    A turn whose user message the server no longer holds (a restart without persistence) is
    begun again. Any other exception (a raw redis-py one, say) fails the test.
    """
    message_id = f"{session}-q{n}"
    tally.turns += 1
    for _ in range(MAX_ATTEMPTS):
        turn = await _step(tally, lambda: store.begin_turn(session, f"question {n}", message_id=message_id))
        tally.acked[message_id] = (turn.seq, generation())
        await during(session, n)
        try:
            reply = await _step(tally, functools.partial(store.finish_turn, turn, f"answer to question {n}"))
        except TurnGone as exc:  # the server lost the session under us
            tally.error(exc)
            continue
        tally.acked[reply.id] = (reply.seq, generation())
        return
    raise AssertionError(f"turn {message_id} never completed")


async def _step(tally: Tally, call: Callable[[], Awaitable[T]]) -> T:
    for _ in range(MAX_ATTEMPTS):
        try:
            return await call()
        except ServerUnavailable as exc:
            tally.error(exc)
            await asyncio.sleep(CALLER_BACKOFF_SECONDS)
    raise AssertionError("the server never came back")


def check_history(messages: Sequence[Message]) -> list[str]:
    """A session's history is internally consistent; return its user message ids in order.

    Seqs contiguous, no id twice, each question followed by exactly its one answer.
    """
    if not messages:
        return []
    seqs = [m.seq for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap or disorder in {seqs}"
    ids = [m.id for m in messages]
    assert len(ids) == len(set(ids)), f"duplicated messages in {ids}"
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert (question.role, answer.role) == ("user", "assistant"), ids
        assert answer.reply_to == question.seq and answer.id == f"{question.id}:reply"
        assert answer.content == f"answer to {question.content}"
    return [m.id for m in messages[::2]]
