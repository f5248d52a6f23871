"""The load test's checker: what the clients were told, against what every session holds afterwards.

It reads each session straight from the store (`history`, `info`, `summary_work`), never through
the service under test, and counts every way a turn can go wrong under concurrency:

- lost: a seq past the summary's watermark not held, or fewer messages stored than acknowledged;
- duplicated: a message id held twice, or more messages stored than were ever sent;
- misordered: seqs not strictly increasing, or a reply not directly after the message it answers
  (under the `queue` policy turns never interleave);
- mismatched: an acknowledged message held with another seq or content, a held message no
  client sent, or the deltas of a message's only stream that are not its stored reply;
- retry mismatches: two answers for one message id that disagree, or that both stored it anew;
- summary behind: once the workers have drained, a summary step still due.

Messages at or below the watermark are folded into the summary and released; they count as
accounted for, and the total stored (the session's last seq) still has to match what was sent.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from turnstate.store import Store
from turnstate.types import Message

MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Answer:
    """What the service answered to one request: the stored user message and its stored reply."""

    seq: int
    resumed: bool
    reply_seq: int
    reply_id: str
    reply_to: int | None
    reply: str
    streamed: str | None = None  # the deltas of a streamed answer, joined

    def same_turn(self, other: Answer) -> bool:
        return (self.seq, self.reply_seq, self.reply_id, self.reply) == (
            other.seq,
            other.reply_seq,
            other.reply_id,
            other.reply,
        )


@dataclass(frozen=True, slots=True)
class Sent:
    """One request as the client saw it: the message it sent, and the answer (None: it failed)."""

    session: str
    message_id: str
    content: str
    answer: Answer | None


@dataclass
class Check:
    """Counts over every session checked; `violations` is what must be zero."""

    sessions: int = 0
    turns: int = 0  # distinct message ids sent
    acknowledged: int = 0  # ... answered at least once
    retried: int = 0  # ... answered more than once
    stored: int = 0  # messages stored (sum of the sessions' last seq)
    held: int = 0  # messages still held (hot list and archive)
    folded: int = 0  # acknowledged messages covered by the summary watermark and released
    summarized: int = 0  # messages under the watermarks
    summaries: int = 0  # sessions with a summary
    lost: int = 0
    duplicated: int = 0
    misordered: int = 0
    mismatched: int = 0
    retry_mismatches: int = 0
    summary_behind: int = 0  # sessions
    # Streams whose deltas were not the stored reply, of messages sent more than once: a retry that
    # comes while the first attempt holds the lease gets that lease (store.begin_turn), so both
    # generate, the first to finish is stored, and the other's `done` event carries that reply.
    # Not a violation: the stored state is consistent and `done` says what was stored.
    streams_replaced: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return (
            self.lost
            + self.duplicated
            + self.misordered
            + self.mismatched
            + self.retry_mismatches
            + self.summary_behind
        )

    def problem(self, session: str, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{session}: {text}")


async def check_sessions(store: Store, sent: Iterable[Sent], *, summaries_drained: bool = True) -> Check:
    """Check every session that `sent` names; with `summaries_drained`, also that no summary step is left due."""
    by_session: dict[str, list[Sent]] = defaultdict(list)
    for s in sent:
        by_session[s.session].append(s)
    check = Check()
    for session, requests in by_session.items():
        await _check_session(store, check, session, requests, summaries_drained)
    return check


async def _check_session(
    store: Store, check: Check, session: str, requests: Sequence[Sent], summaries_drained: bool
) -> None:
    history = await store.history(session)
    info = await store.info(session)
    upto, last = info.summary_upto, info.last_seq
    check.sessions += 1
    check.stored += last
    check.held += len(history)
    check.summarized += upto
    check.summaries += info.summary is not None
    _check_order(check, session, history, upto, last)
    held = _check_ids(check, session, history)

    answers: dict[str, list[Answer]] = defaultdict(list)
    contents: dict[str, str] = {}
    for r in requests:
        contents[r.message_id] = r.content
        if r.answer is not None:
            answers[r.message_id].append(r.answer)
    check.turns += len(contents)
    check.acknowledged += len(answers)
    check.retried += sum(1 for a in answers.values() if len(a) > 1)
    for message_id, told in answers.items():
        _check_turn(check, session, held, upto, message_id, contents[message_id], told)
    for m in history:
        if m.role == "user" and m.id not in contents:
            check.mismatched += 1
            check.problem(session, f"holds a message no client sent: seq {m.seq} id {m.id!r}")

    # Every acknowledged turn stored two messages; an unacknowledged one at most two.
    unacknowledged = len(contents) - len(answers)
    if last < 2 * len(answers):
        check.lost += 2 * len(answers) - last
        check.problem(session, f"{last} messages stored, {2 * len(answers)} acknowledged")
    elif last > 2 * len(contents):
        check.duplicated += last - 2 * len(contents)
        check.problem(session, f"{last} messages stored, {2 * len(answers)} acknowledged + {unacknowledged} failed")

    if summaries_drained:
        pending = await store.summary_work(session, max_messages=store.settings.summary_every)
        if len(pending.messages) >= store.settings.summary_every:
            check.summary_behind += 1
            check.problem(session, f"a summary step is still due after the drain (watermark {upto}, last {last})")


def _check_order(check: Check, session: str, history: Sequence[Message], upto: int, last: int) -> None:
    """Seqs strictly increasing, every one from the watermark to the last held, each reply right after its message."""
    for before, after in itertools.pairwise(history):
        if after.seq <= before.seq:
            check.misordered += 1
            check.problem(session, f"seq {after.seq} held after seq {before.seq}")
        if after.role == "assistant" and (before.role != "user" or after.reply_to != before.seq):
            check.misordered += 1
            check.problem(
                session, f"reply seq {after.seq} (to {after.reply_to}) follows {before.role} seq {before.seq}"
            )
    missing = set(range(upto + 1, last + 1)) - {m.seq for m in history}
    if missing:
        check.lost += len(missing)
        check.problem(session, f"seqs {sorted(missing)[:10]} are past the watermark {upto} but not held")


def _check_ids(check: Check, session: str, history: Sequence[Message]) -> dict[str, Message]:
    """The held messages by id; an id held twice is a duplicate."""
    counts = Counter(m.id for m in history)
    for message_id, n in counts.items():
        if n > 1:
            check.duplicated += n - 1
            check.problem(session, f"message {message_id!r} held {n} times")
    return {m.id: m for m in history}


def _check_turn(
    check: Check, session: str, held: dict[str, Message], upto: int, message_id: str, content: str, told: list[Answer]
) -> None:
    seqs = {m.seq for m in held.values()}
    """One acknowledged turn: its answers agree, and both its messages are held as told (or folded)."""
    first = told[0]
    if any(not first.same_turn(a) for a in told[1:]) or sum(not a.resumed for a in told) > 1:
        check.retry_mismatches += 1
        check.problem(session, f"answers to {message_id!r} disagree: {told}")
    replaced = sum(a.streamed is not None and a.streamed != a.reply for a in told)
    if replaced and len(told) == 1:
        check.mismatched += 1
        check.problem(session, f"the deltas streamed for {message_id!r} are not its stored reply")
    check.streams_replaced += replaced if len(told) > 1 else 0
    if first.reply_to != first.seq or first.reply_seq != first.seq + 1:
        check.misordered += 1
        check.problem(session, f"{message_id!r} at seq {first.seq} was answered by seq {first.reply_seq}")
    expected = (
        (message_id, first.seq, "user", content, None),
        (first.reply_id, first.reply_seq, "assistant", first.reply, first.seq),
    )
    for mid, seq, role, text, reply_to in expected:
        m = held.get(mid)
        if m is None:
            if seq <= upto:
                check.folded += 1
            elif seq in seqs:
                check.mismatched += 1
                check.problem(session, f"acknowledged {role} message {mid!r} lost its seq {seq} to another")
            else:  # counted as lost with the missing seqs, or with the messages never stored
                check.problem(session, f"acknowledged {role} message {mid!r} (seq {seq}) is not held")
        elif (m.seq, m.role, m.content, m.reply_to) != (seq, role, text, reply_to):
            check.mismatched += 1
            check.problem(session, f"message {mid!r} is held as seq {m.seq} {m.role}, told seq {seq} {role}")
