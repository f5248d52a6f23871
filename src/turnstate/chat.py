"""One chat turn end to end: begin_turn -> prompt -> model -> finish_turn.

The model runs between the turn's two round trips. If it fails, the turn is aborted: the user
message stays (unanswered), the lease is released, and a retry with the same message id resumes
the turn. A streamed reply is produced by a task of its own, so a client that goes away
mid-stream does not cut the turn short: the model's reply is completed and stored, and a retry
with the same message id returns it at once instead of paying for a second generation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from turnstate.errors import ModelError, TurnstateError
from turnstate.llm import SUMMARY_MARKER, ChatModel, PromptMessage
from turnstate.store import Store
from turnstate.types import Message, Turn

log = logging.getLogger(__name__)


def build_prompt(turn: Turn, system_prompt: str) -> list[PromptMessage]:
    """System prompt, then the rolling summary, then the window (oldest first)."""
    prompt: list[PromptMessage] = [{"role": "system", "content": system_prompt}]
    if turn.summary:
        prompt.append({"role": "system", "content": f"{SUMMARY_MARKER} {turn.summary}"})
    for m in turn.messages:
        if m.role == "tool":  # a stored tool result has no tool-call id to pair it with
            prompt.append({"role": "system", "content": f"Tool output: {m.content}"})
        else:
            prompt.append({"role": m.role, "content": m.content})
    return prompt


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A finished turn: the stored reply, the turn it answers, and where the time went."""

    turn: Turn
    reply: Message
    state_seconds: float  # the two Redis round trips
    model_seconds: float  # the model call


class TurnStream:
    """The reply's text deltas as they arrive; `result()` gives the stored turn when done."""

    def __init__(self, chat: Chat, turn: Turn, state_seconds: float) -> None:
        self.turn = turn
        self._queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        self._task = chat.spawn(self._produce(chat, state_seconds))

    async def _produce(self, chat: Chat, state_seconds: float) -> ChatResult:
        if self.turn.reply is not None:  # a retry of an answered turn: replay, no model call
            self._queue.put_nowait(self.turn.reply.content)
            self._queue.put_nowait(None)
            return ChatResult(self.turn, self.turn.reply, state_seconds, 0.0)
        try:
            result = await chat.answer(self.turn, state_seconds, on_delta=self._queue.put_nowait)
        except BaseException as exc:
            self._queue.put_nowait(exc)
            raise
        self._queue.put_nowait(None)
        return result

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        while (item := await self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def result(self) -> ChatResult:
        """Wait for the turn to be stored (also after the reader stopped reading)."""
        return await asyncio.shield(self._task)


class Chat:
    """Turns over one store and one model. Create one per process."""

    def __init__(self, store: Store, model: ChatModel, *, system_prompt: str) -> None:
        self.store = store
        self.model = model
        self.system_prompt = system_prompt
        self._tasks: set[asyncio.Task[ChatResult]] = set()
        self._in_flight = 0  # turns begun here and not yet finished or aborted: leases held

    async def begin(
        self, session: str, content: str, *, message_id: str | None = None, tenant: str | None = None
    ) -> tuple[Turn, float]:
        started = time.perf_counter()
        turn = await self.store.begin_turn(session, content, message_id=message_id, tenant=tenant)
        if turn.reply is None:
            self._in_flight += 1
        return turn, time.perf_counter() - started

    async def turn(
        self, session: str, content: str, *, message_id: str | None = None, tenant: str | None = None
    ) -> ChatResult:
        """A whole turn; raises ModelError (turn aborted, retry resumes it) if the model fails."""
        turn, state_seconds = await self.begin(session, content, message_id=message_id, tenant=tenant)
        if turn.reply is not None:
            return ChatResult(turn, turn.reply, state_seconds, 0.0)
        return await self.answer(turn, state_seconds)

    async def stream(
        self, session: str, content: str, *, message_id: str | None = None, tenant: str | None = None
    ) -> TurnStream:
        """Begin a turn and stream its reply. Errors before the first delta are raised here."""
        turn, state_seconds = await self.begin(session, content, message_id=message_id, tenant=tenant)
        return TurnStream(self, turn, state_seconds)

    async def answer(
        self, turn: Turn, state_seconds: float, *, on_delta: Callable[[str], None] | None = None
    ) -> ChatResult:
        """Run the model on a begun turn and store its reply; abort the turn if the model fails."""
        try:
            started = time.perf_counter()
            parts: list[str] = []
            try:
                async for delta in self.model.stream(build_prompt(turn, self.system_prompt)):
                    parts.append(delta)
                    if on_delta is not None:
                        on_delta(delta)
                if not "".join(parts).strip():
                    raise ModelError("the model returned an empty reply", kind="unavailable")
            except BaseException:
                await self._abort(turn)
                raise
            model_seconds = time.perf_counter() - started
            started = time.perf_counter()
            reply = await self.store.finish_turn(turn, "".join(parts))
            return ChatResult(turn, reply, state_seconds + time.perf_counter() - started, model_seconds)
        finally:
            self._in_flight -= 1

    async def _abort(self, turn: Turn) -> None:
        try:
            await asyncio.shield(self.store.abort_turn(turn))
        except TurnstateError:
            log.warning("could not release the lease of turn %s of session %s", turn.seq, turn.session)

    def spawn(self, coro: Coroutine[Any, Any, ChatResult]) -> asyncio.Task[ChatResult]:
        """Run a turn's generation as a task that outlives the request that started it."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieve)
        return task

    @property
    def turns_in_flight(self) -> int:
        return self._in_flight

    async def drain(self) -> None:
        """Let streamed turns still generating finish and be stored (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[ChatResult]) -> None:
    """Mark a background turn's failure as seen: it was already reported to its reader."""
    if not task.cancelled():
        task.exception()
