"""The memory evaluation: planted facts go through the real pipeline, then questions about them are recalled.

Conversations go through Chat and the store with the offline model, and summary steps are
scheduled by the turn scripts' due flag, as in the service. After each round of sessions (every
user's first session, then every second one, ...) the memory worker drains its queue: the offline
pattern extractor picks facts, the offline embedder embeds them, the real FactStore keeps them.
Rounds keep the order in which a user's sessions happened, so a fact that replaces another is
processed after it, as when sessions are days apart.

Two things are measured apart, so that one is not taken for the other:
- extraction coverage: which planted facts were stored at all (a fact never stored cannot be recalled);
- retrieval: where each question's expected facts rank among the user's current facts, by
  FactStore.recall with the offline query embedding. Recall's time and token budgets are left
  out: a timing-dependent cut would make the figures differ from run to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from turnstate.bench.backends import forget_run, fresh, memory_backends, write_json
from turnstate.bench.eval_data import EvalData, EvalUser, PlantedFact, Question, load_eval_data
from turnstate.chat import Chat
from turnstate.config import Settings
from turnstate.llm import OfflineModel
from turnstate.memory.facts import Fact
from turnstate.store import open_store
from turnstate.worker import Memory, SummaryScheduler, memory_docket, open_memory, run_worker

WINDOW_MESSAGES = 4  # small, so that short sessions' messages leave the window and reach the worker
K = 5
CUTS = (1, 3, 5)


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one planted fact: stored at all (maybe replaced since), and whether it is current."""

    fact: PlantedFact
    stored: bool
    current: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """One question: the rank of each expected fact among the top k (None: absent), and why it might be absent."""

    user: str
    question: str
    expects: tuple[str, ...]
    ranks: tuple[int | None, ...]
    extracted: bool  # every expected fact is stored and current, so recall could find it
    replaces: bool  # an expected fact replaced an earlier one
    stale: bool  # a replaced fact was still among the top k (the extractor filed its successor under another key)
    pool: int  # the user's current facts: what recall ranked
    top: tuple[str, ...]

    def hits(self, k: int) -> float:
        """The share of the expected facts found in the top k."""
        return sum(1 for r in self.ranks if r is not None and r <= k) / len(self.ranks)

    def by_chance(self, k: int) -> float:
        """What a random order of the user's current facts would score, for scale."""
        return min(k, self.pool) / self.pool if self.extracted and self.pool else 0.0


@dataclass(frozen=True, slots=True)
class EvalResult:
    users: int
    sessions: int
    turns: int
    k: int
    facts: tuple[Stored, ...]
    answers: tuple[Answer, ...]
    seconds: float

    def subsets(self) -> dict[str, tuple[Answer, ...]]:
        """The answers the report breaks the figures down by."""
        return {
            "all questions": self.answers,
            "their facts were extracted": tuple(a for a in self.answers if a.extracted),
            "about a replaced fact": tuple(a for a in self.answers if a.replaces),
        }

    def recall_at(self, k: int, answers: Sequence[Answer] | None = None) -> float:
        """Mean share of expected facts in the top k: for one-fact questions, the share of questions answered."""
        return _mean(answers if answers is not None else self.answers, lambda a: a.hits(k))

    @property
    def coverage(self) -> float:
        return sum(s.stored for s in self.facts) / len(self.facts)

    def replacements(self) -> tuple[int, int, int]:
        """(replacing facts planted, of them stored, of their predecessors no longer current)."""
        replacing = [s for s in self.facts if s.fact.supersedes is not None]
        current = {s.fact.id: s.current for s in self.facts}
        retired = sum(1 for s in replacing if not current[s.fact.supersedes or ""])
        return len(replacing), sum(s.stored for s in replacing), retired


def _mean(answers: Sequence[Answer], score: Callable[[Answer], float]) -> float:
    return sum(score(a) for a in answers) / len(answers) if answers else 0.0


async def run_memory_eval(settings: Settings, data: EvalData | None = None, *, k: int = K) -> EvalResult:
    """Run the evaluation on the servers `settings` names (both URLs set), under a fresh prefix and tenant."""
    data = data or load_eval_data(closing_turns=WINDOW_MESSAGES // 2)
    run = fresh(settings, window_messages=WINDOW_MESSAGES, max_messages=2 * WINDOW_MESSAGES, summary_every=2)
    started = time.perf_counter()
    store = await open_store(settings=run)
    async with store, open_memory(run, store, OfflineModel()) as memory:
        try:
            await _converse(run, memory, data)
            facts, answers = [], []
            for user in data.users:
                stored, answered = await _ask(run, memory, user, k)
                facts += stored
                answers += answered
        finally:
            await forget_run(run, store, memory.facts, [u.id for u in data.users])
    return EvalResult(
        users=len(data.users),
        sessions=sum(len(u.sessions) for u in data.users),
        turns=sum(len(s) for u in data.users for s in u.sessions),
        k=k,
        facts=tuple(facts),
        answers=tuple(answers),
        seconds=time.perf_counter() - started,
    )


async def _converse(settings: Settings, memory: Memory, data: EvalData) -> None:
    """Every session through Chat, round by round, the worker draining the queue after each round."""
    async with memory_docket(settings, memory.store) as docket:
        scheduler = SummaryScheduler(docket)
        chat = Chat(memory.store, memory.model, system_prompt="memory evaluation", schedule_summary=scheduler)
        for number in range(max(len(u.sessions) for u in data.users)):
            sessions = [(u, f"{u.id}-s{number + 1}") for u in data.users if number < len(u.sessions)]
            for user, session in sessions:
                for n, said in enumerate(user.sessions[number]):
                    await chat.turn(session, said.text, message_id=f"{session}-{n}", user_id=user.id)
            await chat.drain()
            await run_worker(settings, until_finished=True)
            for _, session in sessions:
                work = await memory.store.summary_work(session)
                if scheduler.failures or work.messages:
                    raise RuntimeError(f"messages of {session} were left unsummarised: the figures would be wrong")


async def _ask(settings: Settings, memory: Memory, user: EvalUser, k: int) -> tuple[list[Stored], list[Answer]]:
    """What became of the user's planted facts, and the answer to each of the user's questions."""
    held = await memory.facts.list_facts(settings.tenant, user_id=user.id, include_superseded=True, limit=1000)
    current = [f for f in held if f.current]
    stored = [Stored(p, _found(p, held), _found(p, current)) for p in user.facts.values()]
    is_current = {s.fact.id: s.current for s in stored}
    answers = []
    for question in user.questions:
        vector = (await memory.embedder.embed_queries([question.text]))[0]
        top = [scored.fact for scored in await memory.facts.recall(settings.tenant, user.id, vector, k)]
        answers.append(_answer(user, question, top, all(is_current[e] for e in question.expects), len(current)))
    return stored, answers


def _found(planted: PlantedFact, facts: Sequence[Fact]) -> bool:
    return any(planted.matches(f.key, f.text) for f in facts)


def _answer(user: EvalUser, question: Question, top: list[Fact], extracted: bool, pool: int) -> Answer:
    expected = [user.facts[e] for e in question.expects]
    ranks = tuple(next((n for n, f in enumerate(top, 1) if p.matches(f.key, f.text)), None) for p in expected)
    stale = any(
        user.facts[p.supersedes].matches(f.key, f.text) and not p.matches(f.key, f.text)
        for p in expected
        if p.supersedes is not None
        for f in top
    )
    replaces = any(p.supersedes is not None for p in expected)
    texts = tuple(f.text for f in top)
    return Answer(user.id, question.text, question.expects, ranks, extracted, replaces, stale, pool, texts)


def render_markdown(result: EvalResult) -> str:
    """The report: extraction coverage, then retrieval by subset, then every miss with its reason."""
    lines = [
        f"{result.users} users, {result.sessions} sessions, {result.turns} user turns, {len(result.answers)} "
        f"questions; offline extractor (patterns) and embedder (multilingual-e5-small); {result.seconds:.0f} s.",
        "",
        "Extraction: planted facts the worker stored (a replaced fact counts if it was stored before it was replaced)",
        "",
        "| category | planted | stored |",
        "|---|---:|---:|",
    ]
    categories = sorted({s.fact.category for s in result.facts})
    for category in categories:
        mine = [s for s in result.facts if s.fact.category == category]
        lines.append(f"| {category} | {len(mine)} | {sum(s.stored for s in mine)} |")
    stored = sum(s.stored for s in result.facts)
    lines.append(f"| **all** | {len(result.facts)} | {stored} ({result.coverage:.0%}) |")
    replacing, new_stored, old_retired = result.replacements()
    lines += [
        "",
        f"Replacements: {replacing} facts replace an earlier one; {new_stored} of the new values were stored, and "
        f"{old_retired} of the old values are no longer current.",
        "",
        f"Retrieval: share of expected facts among the top k of the user's current facts (k <= {result.k})",
        "",
        "| questions | n | " + " | ".join(f"recall@{k}" for k in CUTS) + f" | random order @{result.k} | stale@5 |",
        "|---|---:|" + "---:|" * (len(CUTS) + 2),
    ]
    for name, answers in result.subsets().items():
        figures = " | ".join(f"{result.recall_at(k, answers):.2f}" for k in CUTS)
        stale = sum(a.stale for a in answers)
        lines.append(
            f"| {name} | {len(answers)} | {figures} | {_mean(answers, lambda a: a.by_chance(result.k)):.2f} | {stale} |"
        )
    pools = [a.pool for a in result.answers]
    lines += [
        "",
        f"Each user had {_span(pools)} current facts when asked (planted ones and small talk's).",
        "",
        f"Misses at {result.k}, and answers whose top {result.k} still held a replaced value (stale):",
        "",
    ]
    for a in result.answers:
        if a.hits(result.k) < 1 or a.stale:
            lines.append(f"- {a.user}: {a.question!r} -> {', '.join(a.expects)}: {_why(a, result.k)}")
    return "\n".join(lines)


def _why(answer: Answer, k: int) -> str:
    if not answer.extracted:
        return "not extracted"
    if answer.hits(k) < 1:
        return f"not in the top {k}; first: {answer.top[0]!r}"
    return f"found at rank {min(r for r in answer.ranks if r is not None)}, but stale: the old value is still current"


async def eval_report(settings: Settings, users: Sequence[str] = (), json_path: Path | None = None) -> str:
    """`turnstate bench memory-eval`: the evaluation (of some users, or all) on the configured or embedded servers."""
    data = load_eval_data(closing_turns=WINDOW_MESSAGES // 2)
    if users:
        data = data.subset(users)
    async with memory_backends(settings) as live:
        result = await run_memory_eval(live, data)
    if json_path is not None:
        write_json(json_path, result)
    return render_markdown(result)


def _span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"
