"""Property-based tests (hypothesis): random sequences of store operations against a real Valkey,
checked after every step against a small model in Python; and the id rules of turnstate.keys.

Derandomized and without an example database, so CI replays the same cases every run.
"""

from __future__ import annotations

import asyncio
import fnmatch
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.crc import key_slot

from turnstate import InvalidInput, SessionBusy, StaleTurn, Store, Turn, TurnGone
from turnstate.keys import session_keys, session_of, sessions_pattern, validate_id, validate_message_id

T = TypeVar("T")
PROFILE = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
FORBIDDEN = set("{}:*?[]\\") | {c for c in map(chr, range(0x110000)) if c.isspace()}

# Message ids drawn from a small pool, so repeats (retries) are common. None: the store makes one.
# "m1:reply" is a reply's id, which no client message may take.
IDS = st.one_of(st.none(), st.sampled_from([*(f"m{n}" for n in range(5)), "m1:reply"]))
CONTENT = st.text(min_size=1, max_size=40).filter(lambda s: not s.isspace())


@dataclass
class Held:
    """The model of one stored message."""

    id: str
    role: str
    content: str
    reply_to: int | None = None


@dataclass
class Model:
    """What the session must hold: the turn protocol in a few lines of Python."""

    window: int
    max_messages: int
    summary_every: int
    interleave: bool
    last: int = 0
    msgs: dict[int, Held] = field(default_factory=dict)  # every message still held, by seq
    ids: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # remembered id -> (seq, reply seq)
    upto: int = 0  # the summary's watermark
    fence: int = 0  # the newest fence issued
    lease: int | None = None  # the fence holding the lease
    lease_id: str | None = None

    @property
    def first_hot(self) -> int:
        return max(1, self.last - self.max_messages + 1)

    def window_of(self, seq: int) -> list[int]:
        """The seqs of the prompt window of the turn whose question is `seq`."""
        if seq < self.first_hot:
            return [seq] if seq in self.msgs else []
        read = [s for s in range(max(self.first_hot, seq - self.window + 1), seq + 1) if s in self.msgs]
        reply_of = {self.msgs[s].reply_to: s for s in read if self.msgs[s].reply_to is not None}
        out: list[int] = []
        for s in read:
            held = self.msgs[s]
            if held.reply_to is not None and held.reply_to in out:
                continue  # placed right after its question
            if s != seq and held.role == "user" and s not in reply_of:
                continue  # another turn's question, unanswered here
            out.append(s)
            if s in reply_of:
                out.append(reply_of[s])
        return out

    def store(self, held: Held) -> int:
        self.last += 1
        self.msgs[self.last] = held
        return self.last


class StoreMachine(RuleBasedStateMachine):
    """One session per run, with random settings; `run` executes a coroutine on the test's loop."""

    run: Callable[[Awaitable[Any]], Any]
    make_store: Callable[..., Store]

    def __init__(self) -> None:
        super().__init__()
        self.session = f"p-{uuid.uuid4().hex[:10]}"
        self.open: list[Turn] = []

    @initialize(
        window=st.integers(1, 4),
        extra=st.integers(0, 4),
        summary_every=st.integers(1, 4),
        interleave=st.sampled_from([False, False, True]),  # reject mostly: leases, fences, stale turns
    )
    def configure(self, window: int, extra: int, summary_every: int, interleave: bool) -> None:
        policy = "interleave" if interleave else "reject"
        self.store = self.make_store(
            window_messages=window, max_messages=window + extra, summary_every=summary_every, policy=policy
        )
        self.model = Model(window, window + extra, summary_every, interleave)

    def call(self, coro: Awaitable[T]) -> T:
        result: T = self.run(coro)
        return result

    @rule(content=CONTENT, message_id=IDS)
    def begin_turn(self, content: str, message_id: str | None) -> None:
        m = self.model
        if message_id and message_id.endswith(":reply"):
            with pytest.raises(InvalidInput, match="name replies"):
                self.call(self.store.begin_turn(self.session, content, message_id=message_id))
            return
        prior = m.ids.get(message_id) if message_id else None
        if prior and prior[1] is not None:  # answered: the stored reply, nothing changes
            turn = self.call(self.store.begin_turn(self.session, content, message_id=message_id))
            assert turn.resumed and turn.seq == prior[0] and turn.reply is not None
            assert turn.reply.seq == prior[1] and turn.reply.content == m.msgs[prior[1]].content
            return
        held_by_me = m.lease is not None and prior is not None and m.lease_id == message_id
        if not m.interleave and m.lease is not None and not held_by_me:
            with pytest.raises(SessionBusy):
                self.call(self.store.begin_turn(self.session, content, message_id=message_id))
            return
        turn = self.call(self.store.begin_turn(self.session, content, message_id=message_id))
        if not m.interleave:
            if not held_by_me:
                m.fence += 1
                m.lease, m.lease_id = m.fence, turn.message_id
            assert turn.fence == m.lease
        if prior:
            assert turn.resumed and turn.seq == prior[0]
        else:
            assert not turn.resumed and turn.message_id not in m.ids
            assert turn.seq == m.store(Held(turn.message_id, "user", content))
            m.ids[turn.message_id] = (turn.seq, None)
        # the window: the conversation up to the turn's own question, at most `window` messages
        # read; other turns' questions only with their replies, each reply after its question
        assert [msg.seq for msg in turn.messages] == m.window_of(turn.seq)
        assert turn.summary_upto == m.upto
        assert turn.summary_due == (m.last - m.window - m.upto >= m.summary_every)
        self.open.append(turn)

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(0, 100), content=CONTENT)
    def finish_turn(self, pick: int, content: str) -> None:
        m = self.model
        turn = self.open.pop(pick % len(self.open))
        known = m.ids.get(turn.message_id)
        if known is None:  # its id was forgotten once a summary covered it
            with pytest.raises(TurnGone):
                self.call(self.store.finish_turn(turn, content))
            return
        if known[0] != turn.seq:  # forgotten, then taken by a newer message
            with pytest.raises(InvalidInput, match="does not belong"):
                self.call(self.store.finish_turn(turn, content))
            return
        if known[1] is not None:  # answered already: the same reply again
            reply = self.call(self.store.finish_turn(turn, content))
            assert reply.seq == known[1] and reply.content == m.msgs[known[1]].content
            return
        if turn.fence != 0 and turn.fence != m.fence:
            with pytest.raises(StaleTurn):
                self.call(self.store.finish_turn(turn, content))
            return
        reply = self.call(self.store.finish_turn(turn, content))
        assert reply.seq == m.store(Held(f"{turn.message_id}:reply", "assistant", content, turn.seq))
        assert reply.reply_to == turn.seq
        m.ids[turn.message_id] = (turn.seq, reply.seq)
        if m.lease == turn.fence:
            m.lease = m.lease_id = None

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(0, 100))
    def abort_turn(self, pick: int) -> None:
        """Give up a turn's lease; its caller may still try to finish it later (and be refused if stale)."""
        m = self.model
        turn = self.open[pick % len(self.open)]
        released = self.call(self.store.abort_turn(turn))
        assert released == (turn.fence != 0 and m.lease == turn.fence)
        if released:
            m.lease = m.lease_id = None

    @rule(role=st.sampled_from(["system", "tool"]), content=CONTENT, message_id=IDS)
    def append(self, role: str, content: str, message_id: str | None) -> None:
        m = self.model
        if message_id and message_id.endswith(":reply"):
            with pytest.raises(InvalidInput, match="name replies"):
                self.call(self.store.append(self.session, role, content, message_id=message_id))
            return
        prior = m.ids.get(message_id) if message_id else None
        stored = self.call(self.store.append(self.session, role, content, message_id=message_id))
        if prior:  # a duplicate: the message stored first under this id
            assert stored.seq == prior[0] and stored.content == m.msgs[prior[0]].content
            return
        assert stored.seq == m.store(Held(stored.id, role, content))
        m.ids[stored.id] = (stored.seq, None)

    @rule(text=st.text(max_size=30))
    def commit_summary(self, text: str) -> None:
        """What a worker does: read the next step, fold it, commit with a compare-and-set."""
        m = self.model
        work = self.call(self.store.summary_work(self.session))
        target = max(m.upto, min(m.last - m.window, m.upto + 200))
        assert (work.upto, work.target) == (m.upto, target)
        assert [(w.seq, w.content) for w in work.messages] == [
            (s, m.msgs[s].content) for s in range(m.upto + 1, target + 1)
        ]
        # a stale worker's commit changes nothing
        stale = self.store.commit_summary(self.session, "stale", expected_upto=m.upto + 1, new_upto=target + 1)
        assert not self.call(stale)
        assert self.call(self.store.commit_summary(self.session, text, expected_upto=m.upto, new_upto=target))
        m.upto = target
        # archived messages the summary covers are released, with their ids, in order; a question
        # whose reply is not covered yet stays, with all after it, until its reply is
        for seq in sorted(s for s in m.msgs if s < m.first_hot and s <= target):
            known = m.ids.get(m.msgs[seq].id)
            if known and known[1] is not None and known[1] > target:
                break
            held = m.msgs.pop(seq)
            m.ids.pop(held.id, None)

    @invariant()
    def the_store_holds_what_the_model_says(self) -> None:
        if not hasattr(self, "model"):
            return
        m = self.model
        history = self.call(self.store.history(self.session))
        assert [(h.seq, h.id, h.role, h.content, h.reply_to) for h in history] == [
            (s, h.id, h.role, h.content, h.reply_to) for s, h in sorted(m.msgs.items())
        ]
        # nothing lost: every message past the watermark is held; seqs contiguous, ending at the last
        assert all(s in m.msgs for s in range(m.upto + 1, m.last + 1))
        assert [h.seq for h in history] == list(range(m.last - len(history) + 1, m.last + 1))
        assert len({h.id for h in history}) == len(history), "an id stored twice"
        info = self.call(self.store.info(self.session))
        assert (info.last_seq, info.summary_upto) == (m.last, m.upto)
        assert info.hot == m.last - m.first_hot + 1 <= m.max_messages
        assert info.archived == len(history) - info.hot
        assert info.lease_held == (m.lease is not None)


async def test_random_operations_keep_every_invariant(make_store: Any) -> None:
    loop = asyncio.get_running_loop()

    class Machine(StoreMachine):
        pass

    # Hypothesis drives the machine from a thread; each store call runs on this loop, which owns
    # the stores' connections (make_store closes them after the test).
    Machine.run = staticmethod(lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(30))  # type: ignore[method-assign]
    Machine.make_store = staticmethod(make_store)  # type: ignore[method-assign]
    machine_settings = settings(PROFILE, max_examples=150, stateful_step_count=50)
    await asyncio.to_thread(run_state_machine_as_test, Machine, settings=machine_settings)


# Found by this machine, fixed since: commit_summary used to release a turn's question while its
# reply was past the watermark, leaving the turn's id naming a message no longer held (append then
# failed to decode it) and never deleting it (a retry got "no longer held"); and a client could take
# "m1:reply", the id of m1's reply, so one id named two messages.


async def test_a_question_stays_until_a_summary_covers_its_reply(make_store: Any, session_id: str) -> None:
    store = make_store(window_messages=1, max_messages=1, summary_every=1)
    turn = await store.begin_turn(session_id, "question", message_id="m1")  # seq 1
    await store.finish_turn(turn, "answer")  # seq 2; with max_messages=1 the question is archived
    assert await store.commit_summary(session_id, "s", expected_upto=0, new_upto=1)
    assert (await store.info(session_id)).archived == 1  # covered, but its reply is not: held
    assert (await store.append(session_id, "system", "note", message_id="m1")).content == "question"
    again = await store.begin_turn(session_id, "question", message_id="m1")
    assert again.reply is not None and again.reply.content == "answer"
    await store.append(session_id, "system", "note")  # seq 3 moves the reply to the archive
    assert await store.commit_summary(session_id, "s2", expected_upto=1, new_upto=2)
    assert (await store.info(session_id)).archived == 0  # question and reply released, and the id
    fresh = await store.begin_turn(session_id, "question", message_id="m1")
    assert (fresh.seq, fresh.resumed) == (4, False)


async def test_no_client_message_takes_a_reply_id(store: Store, session_id: str) -> None:
    turn = await store.begin_turn(session_id, "question", message_id="m1")
    await store.finish_turn(turn, "answer")  # stored as "m1:reply"
    for attempt in (
        store.append(session_id, "system", "note", message_id="m1:reply"),
        store.begin_turn(session_id, "question", message_id="m1:reply"),
    ):
        with pytest.raises(InvalidInput, match="name replies"):
            await attempt
    assert [m.id for m in await store.history(session_id)] == ["m1", "m1:reply"]


# -- ids and keys ------------------------------------------------------------------------------

SAFE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,130}", fullmatch=True)
ANY_ID = st.one_of(
    SAFE,
    st.text(max_size=140),
    st.builds(lambda a, b, c: a + b + c, SAFE, st.sampled_from(sorted(FORBIDDEN)[:20]), SAFE),
)


@PROFILE
@given(ANY_ID)
def test_an_accepted_id_holds_nothing_that_could_shape_a_key(value: str) -> None:
    try:
        validate_id(value, "session id")
    except InvalidInput:
        return
    assert 1 <= len(value) <= 128 and value.isascii()
    assert not FORBIDDEN & set(value)


@PROFILE
@given(st.one_of(ANY_ID, st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,205}", fullmatch=True)))
def test_an_accepted_message_id_holds_no_brace_glob_or_space(value: str) -> None:
    try:
        validate_message_id(value)
    except InvalidInput:
        return
    assert 1 <= len(value) <= 200 and value.isascii()
    assert not (FORBIDDEN - {":"}) & set(value)


@PROFILE
@given(
    SAFE.filter(lambda s: len(s) <= 128),
    SAFE.filter(lambda s: len(s) <= 128),
    SAFE.filter(lambda s: len(s) <= 128),
    SAFE.filter(lambda s: len(s) <= 128),
)
def test_two_sessions_never_share_a_key_and_a_tenant_never_matches_another(t1: str, s1: str, t2: str, s2: str) -> None:
    one, two = session_keys("ts", t1, s1).all(), session_keys("ts", t2, s2).all()
    # every key of a session has one hash tag, `<tenant>:<session>`: one slot, and only its own
    for keys, (tenant, session) in ((one, (t1, s1)), (two, (t2, s2))):
        assert {k[k.index("{") + 1 : k.index("}")] for k in keys} == {f"{tenant}:{session}"}
        assert all(k.count("{") == k.count("}") == 1 for k in keys)
        assert len({key_slot(k.encode()) for k in keys}) == 1
        assert session_of(keys[1], "ts", tenant) == session
    if (t1, s1) != (t2, s2):
        assert not set(one) & set(two)
    # a tenant's SCAN pattern matches its own sessions' meta key, never another tenant's
    assert fnmatch.fnmatchcase(two[1], sessions_pattern("ts", t1)) == (t1 == t2)
    assert not any(fnmatch.fnmatchcase(k, sessions_pattern("ts", t1)) for k in two if k != two[1])
