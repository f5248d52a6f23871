"""The memory worker: folds messages that left the window into the rolling summary and the facts.

It runs on pydocket, an asyncio job engine on Redis streams, chosen because it needs no new
infrastructure (the same Redis), de-duplicates by task key (the key is session + watermark, so
however many turns notice a summary is due, one job runs per step), redelivers the work of a
worker that died (consumer groups), scales to many workers on many machines, and keeps its keys
hash-tagged for Redis Cluster. Each job is idempotent: facts are remembered before the summary
is committed, remembering a fact twice stores it once, and the summary commit is a
compare-and-set on the watermark, so a retried or duplicated job changes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from docket import Depends, Docket, ExponentialRetry, Worker

from turnstate.config import Settings
from turnstate.errors import TurnstateError
from turnstate.llm import ChatModel, model_from_settings
from turnstate.memory.embedder import Embedder, OfflineEmbedder, embedder_from_settings
from turnstate.memory.extractor import Extractor, extractor_for
from turnstate.memory.summarizer import Summarizer, summarizer_for
from turnstate.memory.vectors import FactStore, open_fact_store
from turnstate.store import Store, open_store
from turnstate.types import Message, Turn

log = logging.getLogger(__name__)

MESSAGES_PER_STEP = 200


@dataclass
class Memory:
    """What a memory job needs; one per worker process."""

    store: Store
    model: ChatModel
    summarizer: Summarizer
    extractor: Extractor
    embedder: Embedder
    facts: FactStore


_current: Memory | None = None


def current_memory() -> Memory:
    if _current is None:
        raise RuntimeError("no memory worker is running in this process")
    return _current


# A failed summary step (PostgreSQL, the embedder or the model down) is tried again 1 s, 2 s, 4 s ...
# later, at most 5 minutes apart: 20 attempts span about an hour, so an outage that long costs no
# step even in a session that has gone quiet (a session still talking enqueues it at its next turn).
SUMMARY_RETRY = ExponentialRetry(attempts=20, minimum_delay=timedelta(seconds=1), maximum_delay=timedelta(minutes=5))


async def summarize_session(
    tenant: str,
    session: str,
    user_id: str,
    upto: int,
    memory: Memory = Depends(current_memory),
    retry: ExponentialRetry = SUMMARY_RETRY,
) -> None:
    """Summary steps from the session's watermark as it is now, each committed by CAS, until every
    message that has left the window is folded.

    `upto` is only the watermark its enqueuer saw: a turn that began before a commit and finished
    after it names the old one, and its step must not be dropped for that. Passes go on while
    messages leave the window meanwhile: a turn whose enqueue pydocket dropped because this job
    was running has its messages read by the next pass (see summary_key).
    """
    while True:
        work = await memory.store.summary_work(session, tenant=tenant, max_messages=MESSAGES_PER_STEP)
        if work.target <= work.upto:
            return  # nothing (more) has left the window: done here, or by another worker
        summary = work.summary or ""  # every message of the step was removed: only the watermark moves
        if work.messages:
            await remember_facts(memory, tenant, user_id, session, work.messages)
            summary = await memory.summarizer.summarize(work.summary, work.messages)
        committed = await memory.store.commit_summary(
            session, summary, expected_upto=work.upto, new_upto=work.target, tenant=tenant
        )
        outcome = "committed" if committed else "already committed by another worker"
        log.info("summary of %s/%s up to %d: %s", tenant, session, work.target, outcome)


async def remember_facts(memory: Memory, tenant: str, user_id: str, session: str, messages: tuple[Message, ...]) -> int:
    candidates = await memory.extractor.extract(messages)
    if not candidates:
        return 0
    vectors = await memory.embedder.embed_passages([c.text for c in candidates])
    seq_range = (messages[0].seq, messages[-1].seq)
    for candidate, vector in zip(candidates, vectors, strict=True):
        said_at = None if candidate.said_ms is None else datetime.fromtimestamp(candidate.said_ms / 1000, UTC)
        await memory.facts.remember(
            tenant, user_id, candidate.key, candidate.text, vector, session_id=session, seq_range=seq_range,
            said_at=said_at,
        )  # fmt: skip
    return len(candidates)


def docket_name(settings: Settings) -> str:
    return f"{settings.key_prefix}-memory"


def summary_key(tenant: str, session: str, block: int) -> str:
    """One job per `summary_every` messages stored: the task key de-duplicates the turns that find a step due.

    Keyed by the block of the session's last seq (last seq // summary_every), not by the watermark:
    pydocket drops an enqueue whose key is running, and a job enqueued in block b stops only once
    it found nothing left outside the window of at least b * summary_every messages, so an enqueue
    dropped in the same block leaves less than a step behind it; the next block's has a new key.
    (By watermark, a turn that began before a commit named the old watermark, and was dropped
    while that job ran: the step stayed due.)
    """
    return f"summarize:{tenant}:{session}:{block}"


async def enqueue_summary(docket: Docket, tenant: str, session: str, user_id: str, upto: int, block: int) -> None:
    await docket.add(summarize_session, key=summary_key(tenant, session, block))(tenant, session, user_id, upto)


class SummaryScheduler:
    """Enqueues the summary step a turn found due. A lost enqueue is no loss: the step stays due,
    so the next turn of the session enqueues it again."""

    def __init__(self, docket: Docket) -> None:
        self.docket = docket
        self.failures = 0

    async def __call__(self, turn: Turn, user_id: str, block: int) -> None:
        """`block`: see summary_key."""
        try:
            await enqueue_summary(self.docket, turn.tenant, turn.session, user_id, turn.summary_upto, block)
        except Exception as exc:  # the turn is done; the next one will try again
            self.failures += 1
            log.warning("could not schedule the summary of %s/%s: %s", turn.tenant, turn.session, exc)


def memory_docket(settings: Settings, store: Store) -> Docket:
    """The job queue, on the store's own server."""
    if store.url is None:
        raise TurnstateError("the store was built without its URL; open it with open_store()")
    return Docket(name=docket_name(settings), url=pooled(store.url, settings.max_connections))


def pooled(url: str, max_connections: int) -> str:
    """`url` asking redis-py for a pool of `max_connections` (pydocket builds its pool from the URL).

    Left at redis-py's default of 100, a service enqueuing for more sessions at once had the rest
    refused ("Too many connections"). A size the URL already names is kept.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    if any(name == "max_connections" for name, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, ("max_connections", str(max_connections))])))


@asynccontextmanager
async def open_memory(settings: Settings, store: Store, model: ChatModel) -> AsyncIterator[Memory]:
    """The embedder and fact store that memory jobs (and recall) use beside a store and a model."""
    embedder = embedder_from_settings(settings)
    try:
        if isinstance(embedder, OfflineEmbedder):
            await embedder.embed_queries(["warm up"])  # its first call loads the model: not during a turn
        facts = await open_fact_store(settings, embedder.dim, model=embedder.name, wait_for_database=True)
        try:
            yield Memory(store, model, summarizer_for(model), extractor_for(model), embedder, facts)
        finally:
            await facts.aclose()
    finally:
        await embedder.aclose()


@contextlib.contextmanager
def jobs_use(memory: Memory) -> Iterator[None]:
    """Memory jobs run in this process use `memory` while the block lasts."""
    global _current
    _current = memory
    try:
        yield
    finally:
        _current = None


def memory_worker(settings: Settings, docket: Docket) -> Worker:
    docket.register(summarize_session)
    redelivery = timedelta(seconds=settings.worker_redelivery_seconds)
    return Worker(docket, concurrency=settings.worker_concurrency, redelivery_timeout=redelivery)


@asynccontextmanager
async def serving_jobs(settings: Settings, docket: Docket, memory: Memory) -> AsyncIterator[None]:
    """A worker taking memory jobs in the background of this process until the block ends."""
    with jobs_use(memory):
        async with memory_worker(settings, docket) as worker:
            task = asyncio.create_task(worker.run_forever())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def run_worker(settings: Settings, *, until_finished: bool = False) -> None:
    """`turnstate worker`: serve memory jobs until stopped (or, with `until_finished`, none are left)."""
    async with AsyncExitStack() as stack:
        store = await open_store(settings=settings)
        stack.push_async_callback(store.aclose)
        model = model_from_settings(settings)
        stack.push_async_callback(model.aclose)
        memory = await stack.enter_async_context(open_memory(settings, store, model))
        docket = await stack.enter_async_context(memory_docket(settings, store))
        stack.enter_context(jobs_use(memory))
        worker = await stack.enter_async_context(memory_worker(settings, docket))
        if until_finished:
            await worker.run_until_finished()
        else:
            await worker.run_forever()
