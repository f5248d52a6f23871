"""The memory worker under measurement: summaries per second, and how long a message waits to be summarised.

Both use the real pipeline with the offline model: turns through Chat, summary steps enqueued by
the turn scripts' due flag, and a pydocket worker running the same job as `turnstate worker`
(extractive summary, pattern extraction, embedding, fact writes, CAS commit).

- Throughput: N sessions talk until one summary step each is due, with no worker running; then
  one worker (its embedder already loaded by open_memory) drains the queue and is timed.
- Lag: a worker process (`turnstate worker`'s loop, started with multiprocessing so it gets the
  bench's settings, not the environment's) runs while sessions take turns at a steady rate. A
  message leaves the window at the turn that pushes it out; it is summarised when a poll of its
  session's watermark sees a committed summary cover it. The lag has two parts: waiting for the
  step to be due (`summary_every` messages outside the window: set by the session's own pace),
  and the worker's queue and work, reported apart as step due -> committed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from turnstate.bench.backends import forget_run, fresh
from turnstate.bench.memory_recall import Latency
from turnstate.chat import Chat
from turnstate.config import Settings
from turnstate.llm import OfflineModel
from turnstate.store import Store, open_store
from turnstate.worker import SummaryScheduler, jobs_use, memory_docket, memory_worker, open_memory, run_worker

POLL_SECONDS = 0.05
TALKERS = 16  # sessions talking at once
TAIL_SECONDS = 120.0  # how long the load goes on after the measured period, for its messages' steps to commit


@dataclass(frozen=True, slots=True)
class Throughput:
    concurrency: int  # jobs the worker runs at once
    summaries: int
    messages: int  # folded into those summaries
    facts: int  # stored by them
    seconds: float

    @property
    def per_second(self) -> float:
        return self.summaries / self.seconds


@dataclass(frozen=True, slots=True)
class Lag:
    rate: float  # turns per second offered
    achieved: float  # turns per second completed in the measured period
    sessions: int
    seconds: float  # the measured period
    messages: int  # messages that left the window in it, and were summarised
    unfinished: int  # ... and were still unsummarised when the bench stopped waiting
    lag: Latency  # leaving the window -> covered by a committed summary
    worker_lag: Latency  # the step found due -> committed
    poll_ms: float


def _text(texts: Sequence[str], session: int, turn: int) -> str:
    return texts[(session * 7 + turn) % len(texts)]


async def summary_throughput(
    settings: Settings, texts: Sequence[str], *, sessions: int, turns: int, concurrency: int
) -> Throughput:
    """Time one worker draining one due summary step for each of `sessions` sessions of `turns` turns."""
    run = fresh(settings, worker_concurrency=concurrency)
    names = [f"s{n}" for n in range(sessions)]
    store = await open_store(settings=run)
    async with store, open_memory(run, store, OfflineModel()) as memory, memory_docket(run, store) as docket:
        try:
            chat = Chat(store, memory.model, system_prompt="bench", schedule_summary=SummaryScheduler(docket))

            talking = asyncio.Semaphore(TALKERS)

            async def talk(n: int) -> None:
                async with talking:
                    for t in range(turns):
                        await chat.turn(names[n], _text(texts, n, t), message_id=f"m{t}")

            await asyncio.gather(*(talk(n) for n in range(sessions)))
            await chat.drain()
            with jobs_use(memory):
                async with memory_worker(run, docket) as worker:
                    started = time.perf_counter()
                    await worker.run_until_finished()
                    seconds = time.perf_counter() - started
            folded = [await _summarised(store, name) for name in names]
            facts = sum([len(await memory.facts.list_facts(run.tenant, user_id=name)) for name in names])
        finally:
            await forget_run(run, store, memory.facts, names)
    return Throughput(concurrency, sum(1 for n in folded if n), sum(folded), facts, seconds)


async def _summarised(store: Store, session: str) -> int:
    """How many messages the session's summary covers; RuntimeError if any that left the window are not covered."""
    work = await store.summary_work(session)
    if work.messages:
        raise RuntimeError(f"session {session} still has {len(work.messages)} messages to summarise")
    return work.upto


class _LagTracker:
    """When each message left the window and when its step became due; the lags once summaries commit."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.left: dict[str, dict[int, int]] = {}
        self.left_upto: dict[str, int] = {}
        self.due_at: dict[tuple[str, int], int] = {}
        self.lags: list[int] = []
        self.worker_lags: list[int] = []
        self.start = self.end = 0  # the measured period, perf_counter_ns

    def holds(self, session: str, last_seq: int) -> None:
        """The session now holds `last_seq` messages: every one up to last_seq - window has left the window."""
        now, left, upto = time.perf_counter_ns(), self.left.setdefault(session, {}), last_seq - self.window
        for seq in range(self.left_upto.get(session, 0) + 1, upto + 1):
            left[seq] = now
        self.left_upto[session] = max(upto, self.left_upto.get(session, 0))

    def due(self, session: str, upto: int) -> None:
        self.due_at.setdefault((session, upto), time.perf_counter_ns())

    def committed(self, session: str, old: int, new: int) -> None:
        now, left = time.perf_counter_ns(), self.left.get(session, {})
        for seq in range(old + 1, new + 1):
            if self.measured(gone := left.get(seq, 0)):
                self.lags.append(now - gone)
        if self.measured(due := self.due_at.get((session, old), 0)):
            self.worker_lags.append(now - due)

    def unfinished(self, watermarks: dict[str, int]) -> int:
        return sum(
            1
            for s, left in self.left.items()
            for seq, gone in left.items()
            if seq > watermarks[s] and self.measured(gone)
        )

    def measured(self, at: int) -> bool:
        return self.start <= at < self.end


def _serve(settings: Settings) -> None:
    """The worker process's body: the loop `turnstate worker` runs, on the bench's settings."""
    asyncio.run(run_worker(settings))


async def summary_lag(
    settings: Settings, texts: Sequence[str], *, rate: float, sessions: int, seconds: float, warmup: float
) -> Lag:
    """Offer `rate` turns per second over `sessions` sessions with a worker process running; measure the lag."""
    run = fresh(settings)
    names = [f"s{n}" for n in range(sessions)]
    tracker = _LagTracker(run.window_messages)
    worker = multiprocessing.get_context("spawn").Process(target=_serve, args=(run,), daemon=True)
    store = await open_store(settings=run)
    async with store, open_memory(run, store, OfflineModel()) as memory, memory_docket(run, store) as docket:
        worker.start()
        try:
            chat = Chat(store, memory.model, system_prompt="bench", schedule_summary=SummaryScheduler(docket))
            load = _Load(chat, tracker, names, texts)
            await asyncio.gather(*(load.fill(name, run.window_messages // 2) for name in names))
            watermarks = dict.fromkeys(names, 0)
            polling = asyncio.create_task(_poll(store, tracker, watermarks))
            try:
                result = await load.run(rate, seconds, warmup, watermarks, worker.is_alive)
            finally:
                polling.cancel()
        finally:
            worker.terminate()
            await asyncio.to_thread(worker.join, 10)
            await forget_run(run, store, memory.facts, names)
    return result


class _Load:
    """Turns at a steady rate, round-robin over the sessions, each reported to the tracker."""

    def __init__(self, chat: Chat, tracker: _LagTracker, names: list[str], texts: Sequence[str]) -> None:
        self.chat, self.tracker, self.names, self.texts = chat, tracker, names, texts
        self.turns = 0

    async def turn(self, session: str, n: int) -> None:
        begun = await self.chat.begin(session, _text(self.texts, self.names.index(session), n), message_id=f"m{n}")
        self.tracker.holds(session, begun.turn.seq)
        if begun.turn.summary_due:
            self.tracker.due(session, begun.turn.summary_upto)
        result = await self.chat.answer(begun)
        self.tracker.holds(session, result.reply.seq)
        if self.tracker.measured(time.perf_counter_ns()):
            self.turns += 1  # turns completed in the measured period

    async def fill(self, session: str, turns: int) -> None:
        """Fill a session's window, so that the measured turns push messages out of it."""
        for n in range(turns):
            await self.turn(session, -1 - n)

    async def run(
        self, rate: float, seconds: float, warmup: float, watermarks: dict[str, int], worker_alive: Callable[[], bool]
    ) -> Lag:
        """A turn every 1/rate s through warm-up and the measured period, then on until its messages are summarised."""
        started = time.perf_counter_ns()
        self.tracker.start = started + int(warmup * 1e9)
        self.tracker.end = self.tracker.start + int(seconds * 1e9)
        give_up = self.tracker.end + int(TAIL_SECONDS * 1e9)
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while (now := time.perf_counter_ns()) < self.tracker.end or (
            now < give_up and self.tracker.unfinished(watermarks)
        ):
            if not worker_alive():
                raise RuntimeError("the worker process died (see its traceback above): the lag cannot be measured")
            await asyncio.sleep(max(0.0, (started + n * 1e9 / rate - now) / 1e9))
            task = asyncio.create_task(self.turn(self.names[n % len(self.names)], n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)
        if not self.tracker.lags:
            raise RuntimeError("no message left the window and was summarised in the measured period: run longer")
        return Lag(
            rate=rate,
            achieved=self.turns / seconds,
            sessions=len(self.names),
            seconds=seconds,
            messages=len(self.tracker.lags),
            unfinished=self.tracker.unfinished(watermarks),
            lag=Latency.of(self.tracker.lags),
            worker_lag=Latency.of(self.tracker.worker_lags),
            poll_ms=POLL_SECONDS * 1000,
        )


async def _poll(store: Store, tracker: _LagTracker, watermarks: dict[str, int]) -> None:
    """Read every session's watermark each POLL_SECONDS; report each advance to the tracker."""
    while True:
        infos = await asyncio.gather(*(store.info(name) for name in watermarks))
        for info in infos:
            if info.summary_upto > watermarks[info.session]:
                tracker.committed(info.session, watermarks[info.session], info.summary_upto)
                watermarks[info.session] = info.summary_upto
        await asyncio.sleep(POLL_SECONDS)
