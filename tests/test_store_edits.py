"""Editing a session: several messages in one step, removing the newest or any message, recent reads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import one_turn
from turnstate import InvalidInput, StaleTurn, Store
from turnstate.store import MAX_BATCH


async def test_append_many_stores_in_order_in_one_round_trip(store: Store, session_id: str) -> None:
    await store.append(session_id, "system", "be brief", message_id="sys")
    before = store.round_trips
    stored = await store.append_many(
        session_id,
        [
            ("user", "weather?", "u1"),
            ("assistant", "call weather()", "c1"),
            ("tool", "rain"),
            ("system", "be brief", "sys"),
        ],
    )
    assert store.round_trips - before == 1
    assert [m.seq for m in stored] == [2, 3, 4, 1]  # the last one was stored before: returned, not stored again
    assert [(m.role, m.content) for m in await store.history(session_id)] == [
        ("system", "be brief"),
        ("user", "weather?"),
        ("assistant", "call weather()"),
        ("tool", "rain"),
    ]


async def test_append_many_stores_an_id_sent_twice_once(store: Store, session_id: str) -> None:
    stored = await store.append_many(session_id, [("user", "a", "x"), ("user", "b", "y"), ("user", "a again", "x")])
    assert [(m.seq, m.content) for m in stored] == [(1, "a"), (2, "b"), (1, "a")]
    assert [m.content for m in await store.history(session_id)] == ["a", "b"]
    assert (await store.info(session_id)).last_seq == 2


async def test_append_many_is_all_or_nothing(make_store: Any, session_id: str) -> None:
    store = make_store(lease_seconds=0.05)
    with pytest.raises(InvalidInput, match="unknown role"):
        await store.append_many(session_id, [("user", "fine"), ("robot", "not a role")])
    with pytest.raises(InvalidInput, match="1 to"):
        await store.append_many(session_id, [])
    with pytest.raises(InvalidInput, match="1 to"):
        await store.append_many(session_id, [("user", "x")] * (MAX_BATCH + 1))
    old = await store.begin_turn(session_id, "first")
    await asyncio.sleep(0.1)  # the lease expires; a newer turn takes the session
    await store.begin_turn(session_id, "second")
    with pytest.raises(StaleTurn):
        await store.append_many(session_id, [("tool", "late 1"), ("tool", "late 2")], turn=old)
    assert [m.content for m in await store.history(session_id)] == ["first", "second"]


async def test_pop_removes_the_newest_message_and_seqs_are_never_reused(store: Store, session_id: str) -> None:
    for n in range(2):
        await one_turn(store, session_id, n, think=0)
    popped = await store.pop(session_id)
    assert popped is not None and (popped.seq, popped.content) == (4, "answer to question 1")
    popped = await store.pop(session_id)
    assert popped is not None and (popped.seq, popped.content) == (3, "question 1")
    assert [m.seq for m in await store.history(session_id)] == [1, 2]
    turn = await store.begin_turn(session_id, "next")
    assert turn.seq == 5
    assert [m.seq for m in turn.messages] == [1, 2, 5]  # the removed slots are not in the prompt


async def test_pop_reaches_into_the_archive_and_stops_at_empty(make_store: Any, session_id: str) -> None:
    store = make_store(max_messages=2, window_messages=2)
    await store.append_many(session_id, [("user", f"m{n}") for n in range(4)])
    assert [(await store.pop(session_id)).content for _ in range(4)] == ["m3", "m2", "m1", "m0"]  # type: ignore[union-attr]
    assert await store.pop(session_id) is None
    assert await store.history(session_id) == []
    assert await store.pop("never-used") is None


async def test_removing_a_reply_makes_its_turn_unanswered(store: Store, session_id: str) -> None:
    await one_turn(store, session_id, 0, think=0)
    removed = await store.remove(session_id, 2)
    assert removed is not None and removed.role == "assistant"
    retry = await store.begin_turn(session_id, "question 0", message_id="q-0")
    assert (retry.resumed, retry.reply, retry.seq) == (True, None, 1)
    reply = await store.finish_turn(retry, "a better answer")
    assert (reply.seq, reply.reply_to) == (3, 1)
    again = await store.begin_turn(session_id, "question 0", message_id="q-0")
    assert again.reply is not None and again.reply.content == "a better answer"


async def test_removing_a_message_forgets_its_id(store: Store, session_id: str) -> None:
    await store.append(session_id, "user", "typo", message_id="m-1")
    removed = await store.remove(session_id, 1)
    assert removed is not None and removed.id == "m-1"
    assert await store.remove(session_id, 1) is None  # already removed
    assert await store.remove(session_id, 9) is None  # never stored
    stored = await store.append(session_id, "user", "fixed", message_id="m-1")
    assert (stored.seq, stored.content) == (2, "fixed")


async def test_remove_checks_its_input_and_its_turn(make_store: Any, session_id: str) -> None:
    store = make_store(lease_seconds=0.05)
    for bad in (0, -1, True, "1", 1.0):
        with pytest.raises(InvalidInput, match="seq must be"):
            await store.remove(session_id, bad)
    old = await store.begin_turn(session_id, "first")
    await asyncio.sleep(0.1)
    await store.begin_turn(session_id, "second")
    with pytest.raises(StaleTurn):
        await store.pop(session_id, turn=old)
    assert len(await store.history(session_id)) == 2


async def test_concurrent_pops_remove_distinct_messages(store: Store, session_id: str) -> None:
    await store.append_many(session_id, [("user", f"m{n}") for n in range(20)])
    popped = await asyncio.gather(*(store.pop(session_id) for _ in range(12)))
    assert sorted(m.seq for m in popped if m) == list(range(9, 21))
    assert [m.seq for m in await store.history(session_id)] == list(range(1, 9))


async def test_recent_reads_the_newest_hot_messages_skipping_removed_ones(make_store: Any, session_id: str) -> None:
    store = make_store(max_messages=6, window_messages=4)
    await store.append_many(session_id, [("user", f"m{n}") for n in range(10)])  # m0..m3 archived
    assert [m.content for m in await store.recent(session_id)] == [f"m{n}" for n in range(4, 10)]
    await store.remove(session_id, 9)  # m8
    await store.remove(session_id, 8)  # m7
    assert [m.content for m in await store.recent(session_id, 3)] == ["m5", "m6", "m9"]
    assert [m.content for m in await store.recent(session_id, 100)] == ["m4", "m5", "m6", "m9"]
    assert await store.recent(session_id, 0) == []
    with pytest.raises(InvalidInput, match="limit must be"):
        await store.recent(session_id, -1)


async def test_a_summary_step_of_removed_messages_moves_the_watermark(make_store: Any, session_id: str) -> None:
    store = make_store(max_messages=4, window_messages=2)
    await store.append_many(session_id, [("user", f"m{n}") for n in range(6)])
    for seq in (1, 2):
        await store.remove(session_id, seq)
    work = await store.summary_work(session_id, max_messages=2)
    assert (work.upto, work.target, work.messages) == (0, 2, ())
    assert await store.commit_summary(session_id, "", expected_upto=0, new_upto=work.target)
    info = await store.info(session_id)
    assert (info.summary_upto, info.archived) == (2, 0)
