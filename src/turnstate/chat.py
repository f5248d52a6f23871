"""One chat turn end to end: (begin_turn + recall) -> prompt -> model -> finish_turn.

The model runs between the turn's two round trips. If it fails, the turn is aborted: the user
message stays (unanswered), the lease is released, and a retry with the same message id resumes
the turn. A streamed reply is produced by a task of its own, so a client that goes away
mid-stream does not cut the turn short: the model's reply is completed and stored, and a retry
with the same message id returns it at once instead of paying for a second generation.

Long-term memory joins here: recall runs concurrently with begin_turn (its own time budget,
never failing the turn), and a summary step that the turn scripts report due is scheduled in
the background after the reply is stored, so neither adds a round trip to the turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from turnstate.errors import ModelError, TurnstateError
from turnstate.keys import validate_id
from turnstate.llm import FACTS_MARKER, ChatModel, PromptMessage, summary_message
from turnstate.memory.facts import Fact
from turnstate.memory.recall import Recall
from turnstate.store import Store
from turnstate.types import Message, Turn

ScheduleSummary = Callable[[Turn, str, int], Coroutine[Any, Any, None]]  # turn, user, block (worker.summary_key)
T = TypeVar("T")

log = logging.getLogger(__name__)


def build_prompt(turn: Turn, system_prompt: str, facts: Sequence[Fact] = ()) -> list[PromptMessage]:
    """System prompt, the rolling summary, recalled facts, then the window (oldest first)."""
    prompt: list[PromptMessage] = [{"role": "system", "content": system_prompt}]
    if turn.summary:
        prompt.append(summary_message(turn.summary))
    if facts:
        lines = "\n".join(f"- {f.text}" for f in facts)
        prompt.append({"role": "system", "content": f"{FACTS_MARKER}\n{lines}"})
    for m in turn.messages:
        if m.role == "tool":  # a stored tool result has no tool-call id to pair it with
            prompt.append({"role": "system", "content": f"Tool output: {m.content}"})
        else:
            prompt.append({"role": m.role, "content": m.content})
    return prompt


@dataclass(frozen=True, slots=True)
class Begun:
    """A begun turn with what was recalled for it."""

    turn: Turn
    user_id: str
    state_seconds: float
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A finished turn: the stored reply, the turn it answers, and where the time went."""

    turn: Turn
    reply: Message
    state_seconds: float  # the two Redis round trips
    model_seconds: float  # the model call
    facts: tuple[Fact, ...] = field(default=())


class TurnStream:
    """The reply's text deltas as they arrive; `result()` gives the stored turn when done."""

    def __init__(self, chat: Chat, begun: Begun) -> None:
        self.turn = begun.turn
        self._queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        self._task = chat.spawn(self._produce(chat, begun))

    async def _produce(self, chat: Chat, begun: Begun) -> ChatResult:
        if self.turn.reply is not None:  # a retry of an answered turn: replay, no model call
            self._queue.put_nowait(self.turn.reply.content)
            self._queue.put_nowait(None)
            return ChatResult(self.turn, self.turn.reply, begun.state_seconds, 0.0)
        try:
            result = await chat.answer(begun, on_delta=self._queue.put_nowait)
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
    """Turns over one store and one model, with long-term memory if given. One per process."""

    def __init__(
        self,
        store: Store,
        model: ChatModel,
        *,
        system_prompt: str,
        recall: Recall | None = None,
        schedule_summary: ScheduleSummary | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.system_prompt = system_prompt
        self.recall = recall
        self.schedule_summary = schedule_summary
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight = 0  # turns begun here and not yet finished or aborted: leases held
        # Turns being answered here, by (tenant, session, message id): a client's retry of one joins it.
        self._answering: dict[tuple[str, str, str], asyncio.Future[ChatResult]] = {}

    async def begin(
        self,
        session: str,
        content: str,
        *,
        message_id: str | None = None,
        tenant: str | None = None,
        user_id: str | None = None,
    ) -> Begun:
        """begin_turn, with recall running beside it (the user defaults to the session)."""
        user_id = session if user_id is None else validate_id(user_id, "user id")
        started = time.perf_counter()
        beginning = self.store.begin_turn(session, content, message_id=message_id, tenant=tenant)
        if self.recall is None:
            turn, facts = await beginning, []
        else:
            tenant_id = tenant or self.store.settings.tenant
            recalling = asyncio.ensure_future(self.recall.recall(tenant_id, user_id, content))
            try:
                turn = await beginning
            except BaseException:
                recalling.cancel()
                raise
            facts = await recalling
        if turn.reply is None:
            self._in_flight += 1
        return Begun(turn, user_id, time.perf_counter() - started, tuple(facts))

    async def turn(
        self,
        session: str,
        content: str,
        *,
        message_id: str | None = None,
        tenant: str | None = None,
        user_id: str | None = None,
    ) -> ChatResult:
        """A whole turn; raises ModelError (turn aborted, retry resumes it) if the model fails."""
        joined = await self._join(session, message_id, tenant)
        if joined is not None:
            return joined
        begun = await self.begin(session, content, message_id=message_id, tenant=tenant, user_id=user_id)
        if begun.turn.reply is not None:
            return ChatResult(begun.turn, begun.turn.reply, begun.state_seconds, 0.0, begun.facts)
        return await self.answer(begun)

    async def stream(
        self,
        session: str,
        content: str,
        *,
        message_id: str | None = None,
        tenant: str | None = None,
        user_id: str | None = None,
    ) -> TurnStream:
        """Begin a turn and stream its reply. Errors before the first delta are raised here."""
        joined = await self._join(session, message_id, tenant)
        if joined is not None:  # replayed like an answered turn
            return TurnStream(self, Begun(joined.turn, user_id or session, joined.state_seconds, joined.facts))
        begun = await self.begin(session, content, message_id=message_id, tenant=tenant, user_id=user_id)
        return TurnStream(self, begun)

    async def _join(self, session: str, message_id: str | None, tenant: str | None) -> ChatResult | None:
        """The outcome of this very turn if this process is answering it now: a client that retries while
        its first request still runs (it timed out, or left a stream) waits for that answer instead of
        paying for a second generation (whose deltas would not be the reply stored)."""
        if message_id is None:
            return None
        running = self._answering.get((tenant or self.store.settings.tenant, session, message_id))
        if running is None:
            return None
        try:
            result = await asyncio.shield(running)
        except asyncio.CancelledError:
            if not running.cancelled():
                raise  # this request was cancelled, not the one it joined
            return None  # the first attempt was cancelled: this one begins the turn again
        turn = dataclasses.replace(result.turn, reply=result.reply, resumed=True)
        return ChatResult(turn, result.reply, 0.0, 0.0, result.facts)

    async def answer(self, begun: Begun, *, on_delta: Callable[[str], None] | None = None) -> ChatResult:
        """Run the model on a begun turn and store its reply; abort the turn if the model fails."""
        turn = begun.turn
        key = (turn.tenant, turn.session, turn.message_id)
        outcome: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        self._answering.setdefault(key, outcome)
        try:
            result = await self._answer(begun, on_delta)
        except asyncio.CancelledError:
            outcome.cancel()
            raise
        except BaseException as exc:
            outcome.set_exception(exc)
            outcome.exception()  # retrieved: whoever joined has it; unjoined, it is the caller's to handle
            raise
        else:
            outcome.set_result(result)
            return result
        finally:
            if self._answering.get(key) is outcome:
                del self._answering[key]

    async def _answer(self, begun: Begun, on_delta: Callable[[str], None] | None) -> ChatResult:
        turn = begun.turn
        try:
            started = time.perf_counter()
            parts: list[str] = []
            try:
                async for delta in self.model.stream(build_prompt(turn, self.system_prompt, begun.facts)):
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
            state_seconds = begun.state_seconds + time.perf_counter() - started
        finally:
            self._in_flight -= 1
        if self.schedule_summary is not None and self._summary_due(turn, reply):
            block = reply.seq // self.store.settings.summary_every
            self.spawn(self.schedule_summary(turn, begun.user_id, block))
        return ChatResult(turn, reply, state_seconds, model_seconds, begun.facts)

    def _summary_due(self, turn: Turn, reply: Message) -> bool:
        """Due at begin_turn, or once the reply was stored: the reply pushes one more message out of the window.

        begin_turn's flag alone misses the step the reply makes due, and if the session then goes
        quiet no later turn notices it: its last messages outside the window are never summarised.
        """
        s = self.store.settings
        return turn.summary_due or reply.seq - s.window_messages - turn.summary_upto >= s.summary_every

    async def _abort(self, turn: Turn) -> None:
        try:
            await asyncio.shield(self.store.abort_turn(turn))
        except TurnstateError:
            log.warning("could not release the lease of turn %s of session %s", turn.seq, turn.session)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run work (a streamed turn's generation, a summary's scheduling) that outlives its request."""
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


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background turn's failure as seen: it was already reported to its reader."""
    if not task.cancelled():
        task.exception()
