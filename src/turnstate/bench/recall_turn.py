"""Long-term memory on the critical path, part two: the chat turn with recall on vs off.

`Chat.begin` runs recall beside `begin_turn`: it embeds the user's message with the offline
embedder, asks PostgreSQL (pgvector) for the user's nearest current facts, and the facts go into
the prompt. The bench measures that path itself, `Chat.begin` then `Chat.answer`, with the model
left out as everywhere in `bench run`: a stand-in answers at once with the workload's reply and
keeps the prompt it was given, so the bench can check that recall-on turns really carried facts.

The fact store is a schema of its own, seeded with `facts_per_user` real facts (sentences of the
evaluation data set, embedded) for each measured user, beside a larger table of other users'
synthetic facts (random unit vectors, COPY, as `memory_recall` loads them); it is dropped at the
end. The embedding and the vector query are timed inside the turns by thin wrappers around the
real embedder and fact store, so the report can say which of the two a turn waits for.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import numpy as np
from psycopg import sql

from turnstate.bench.eval_data import load_eval_data
from turnstate.bench.memory_recall import Latency, bulk_load, fact_schema
from turnstate.bench.results import BenchConfig, RecallVariant
from turnstate.bench.workloads import Texts
from turnstate.chat import Begun, Chat
from turnstate.llm import FACTS_MARKER, PromptMessage
from turnstate.memory.embedder import OFFLINE_DIM, OFFLINE_NAME, Embedder, OfflineEmbedder, Vectors
from turnstate.memory.facts import Embedding, ScoredFact
from turnstate.memory.recall import Recall
from turnstate.memory.schema import names
from turnstate.memory.vectors import FactStore
from turnstate.patterns import Handle, TurnstatePattern, as_chat_message
from turnstate.store import Store

# Recall's full cost is what is measured: the service's 0.25 s budget would skip a late recall
# (a faster turn without facts), which is not what this bench is after. Late recalls are counted.
BUDGET_SECONDS = 30.0
QUESTIONS = 16  # distinct short user messages (the evaluation data's questions)


class InstantModel:
    """The model left out: it answers at once with the reply it is given, and keeps the prompt it got."""

    name = "bench-instant"

    def __init__(self) -> None:
        self.reply = "ok"
        self.prompt: list[PromptMessage] = []

    async def stream(self, messages: Sequence[PromptMessage]) -> AsyncIterator[str]:
        self.prompt = list(messages)
        yield self.reply

    async def aclose(self) -> None:
        """Nothing to release."""


class TimedEmbedder:
    """The real embedder, each query's embedding timed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.samples_ns: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter_ns()
        try:
            return await self.inner.embed_queries(texts)
        finally:
            self.samples_ns.append(time.perf_counter_ns() - started)

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return await self.inner.embed_passages(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


class TimedFactStore(FactStore):
    """The real fact store, each recall query timed, by user (one measured variant is one user)."""

    samples_ns: dict[str, list[int]]

    async def recall(self, tenant: str, user_id: str, query_embedding: Embedding, k: int = 5) -> list[ScoredFact]:
        started = time.perf_counter_ns()
        try:
            return await super().recall(tenant, user_id, query_embedding, k)
        finally:
            self.samples_ns.setdefault(user_id, []).append(time.perf_counter_ns() - started)


def facts_in(prompt: Sequence[PromptMessage]) -> int:
    """How many recalled facts a prompt carried: the lines of its FACTS_MARKER message."""
    for m in prompt:
        if m["role"] == "system" and m["content"].startswith(FACTS_MARKER):
            return sum(1 for line in m["content"].splitlines() if line.startswith("- "))
    return 0


@dataclass
class Tally:
    """Turns run, and how many of them had recalled facts in their prompt."""

    turns: int = 0
    with_facts: int = 0
    facts: int = 0


class ChatTurns(TurnstatePattern):
    """A turn through `Chat`: begin_turn with recall beside it, the prompt, the (instant) model, finish_turn."""

    def __init__(self, store: Store, recall: Recall | None, name: str, tally: Tally | None = None) -> None:
        super().__init__(store)
        self.name, self.model, self.tally = name, InstantModel(), tally or Tally()
        self.chat = Chat(store, self.model, system_prompt="bench", recall=recall)

    @contextmanager
    def without_recall(self) -> Iterator[None]:
        """Recall off for a while: filling the session's history is not what is measured."""
        recall, self.chat.recall = self.chat.recall, None
        try:
            yield
        finally:
            self.chat.recall = recall

    def moved(self, store: Store) -> ChatTurns:
        """The same turns through another store (another client: a proxy's), counted in the same tally."""
        return ChatTurns(store, self.chat.recall, self.name, self.tally)

    async def begin(self, session: str, content: str, message_id: str) -> Handle:
        begun = await self.chat.begin(session, content, message_id=message_id)
        return Handle(session, message_id, [as_chat_message(m) for m in begun.turn.messages], state=begun)

    async def finish(self, handle: Handle, reply: str) -> None:
        begun: Begun = handle.state
        self.model.reply = reply
        await self.chat.answer(begun)
        found = facts_in(self.model.prompt)
        self.tally.turns += 1
        self.tally.with_facts += found > 0
        self.tally.facts += found


@dataclass
class Variant:
    """One measured variant: its turns, the messages it sends, and (recall on) its embedding timer."""

    pattern: ChatTurns
    session: str
    texts: Texts
    messages: str  # what the user messages are, for the report
    embedder: TimedEmbedder | None = None
    query_ns: list[int] = field(default_factory=list)

    def reset(self) -> None:
        self.pattern.tally = Tally()
        if self.embedder is not None:
            self.embedder.samples_ns.clear()
        self.query_ns.clear()

    def result(self) -> RecallVariant:
        t, recall = self.pattern.tally, self.pattern.chat.recall
        return RecallVariant(
            pattern=self.pattern.name,
            messages=self.messages,
            recall=recall is not None,
            turns=t.turns,
            with_facts=t.with_facts,
            facts_per_turn=t.facts / t.turns if t.turns else 0.0,
            late_or_failed=0 if recall is None else recall.stats.late + recall.stats.failed,
            embed=None if self.embedder is None else Latency.of(self.embedder.samples_ns),
            query=None if self.embedder is None else Latency.of(self.query_ns),
        )


def fact_sentences(count: int) -> list[str]:
    """`count` sentences that planted facts in the evaluation data (names, cities, jobs, allergies...), cycled."""
    planted = [s.text for u in load_eval_data().users for session in u.sessions for s in session if s.plants]
    return [planted[i % len(planted)] for i in range(count)]


def questions() -> list[str]:
    return [q.text for u in load_eval_data().users for q in u.questions][:QUESTIONS]


@dataclass
class RecallSetup:
    """The variants, on one store, one embedder and one seeded fact store."""

    variants: list[Variant]
    facts: TimedFactStore
    facts_per_user: int
    other_facts: int

    def collect(self) -> None:
        """Move the fact store's query timings to their variants (a variant's user is its session)."""
        for v in self.variants:
            v.query_ns[:] = self.facts.samples_ns.pop(v.session, [])

    def reset(self) -> None:
        self.facts.samples_ns.clear()
        for v in self.variants:
            v.reset()


@asynccontextmanager
async def recall_setup(database_url: str, store: Store, prefix: str, config: BenchConfig) -> AsyncIterator[RecallSetup]:
    """Recall off and on, with the bench's 400-byte messages and with short questions (only those if --short).

    Each recall-on variant's user (its session) holds `recall_facts_per_user` facts; the table
    holds `recall_other_facts` more of other users. Everything is dropped on the way out.
    """
    long = Texts.of_size(config.message_bytes)
    kinds = [
        ("", long, f"{config.message_bytes} B"),
        ("/questions", Texts(tuple(questions()), long.replies), "questions"),
    ][config.short :]  # --short: the questions only, whose embedding is quick
    inner = OfflineEmbedder()
    try:
        async with fact_schema(database_url) as (schema, conn, _):
            rng = np.random.default_rng(config.recall_other_facts)
            await bulk_load(conn, schema, config.recall_other_facts, config.recall_facts_per_user, rng, heavy=False)
            facts = TimedFactStore(database_url, OFFLINE_DIM, model=OFFLINE_NAME, schema=schema)
            facts.samples_ns = {}
            await facts.open()
            try:
                seeds = Seeds(facts, fact_sentences(config.recall_facts_per_user), store.settings.tenant)
                await seeds.embed(inner)
                variants = [
                    await seeds.variant(store, inner if on else None, f"{prefix}-recall{i}{int(on)}",
                                        f"turnstate-chat{'+recall' if on else ''}{suffix}", texts, messages)
                    for i, (suffix, texts, messages) in enumerate(kinds)
                    for on in (False, True)
                ]  # fmt: skip
                await conn.execute(sql.SQL("ANALYZE {facts}").format(**names(schema)))  # as autovacuum soon would
                yield RecallSetup(variants, facts, config.recall_facts_per_user, config.recall_other_facts)
            finally:
                await facts.aclose()
    finally:
        await inner.aclose()


@dataclass
class Seeds:
    """The facts every recall-on variant's user is given, embedded once."""

    facts: TimedFactStore
    sentences: list[str]
    tenant: str
    vectors: Vectors | None = None

    async def embed(self, embedder: Embedder) -> None:
        self.vectors = await embedder.embed_passages(self.sentences)

    async def variant(
        self, store: Store, embedder: Embedder | None, session: str, name: str, texts: Texts, messages: str
    ) -> Variant:
        """A variant on `session`; with an embedder, recall on and the session's user given the facts."""
        if embedder is None:
            return Variant(ChatTurns(store, None, name), session, texts, messages)
        assert self.vectors is not None
        for n, (sentence, vector) in enumerate(zip(self.sentences, self.vectors, strict=True)):
            await self.facts.remember(self.tenant, session, f"bench.fact{n}", sentence, vector)
        timed = TimedEmbedder(embedder)
        s = store.settings
        recall = Recall(self.facts, timed, store.tokens, k=s.recall_k, budget_seconds=BUDGET_SECONDS,
                        max_tokens=s.recall_tokens)  # fmt: skip
        return Variant(ChatTurns(store, recall, name), session, texts, messages, timed)
