"""Summary steps on the store: what to fold next, and a compare-and-set commit that releases the archive."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import one_turn
from turnstate import Store


async def conversation(store: Store, session: str, turns: int) -> None:
    for n in range(turns):
        await one_turn(store, session, n, think=0)


async def test_the_next_step_is_what_left_the_window(make_store: Any, session_id: str) -> None:
    store = make_store(window_messages=4, max_messages=6)
    await conversation(store, session_id, 5)  # seq 1..10; hot 5..10, archived 1..4
    work = await store.summary_work(session_id)
    assert (work.summary, work.upto, work.target) == (None, 0, 6)
    assert [m.seq for m in work.messages] == [1, 2, 3, 4, 5, 6]  # archive, then the hot list
    small = await store.summary_work(session_id, max_messages=3)
    assert [m.seq for m in small.messages] == [1, 2, 3] and small.target == 3


async def test_commit_is_a_compare_and_set_and_releases_the_archive(make_store: Any, session_id: str) -> None:
    store = make_store(window_messages=4, max_messages=6)
    await conversation(store, session_id, 5)
    work = await store.summary_work(session_id)
    results = await asyncio.gather(
        *(store.commit_summary(session_id, f"summary {n}", expected_upto=0, new_upto=work.target) for n in range(2))
    )
    assert sorted(results) == [False, True]  # two workers, one commit
    info = await store.info(session_id)
    assert (info.summary_upto, info.archived, info.hot) == (6, 0, 6)  # archived 1..4 released
    assert info.summary in ("summary 0", "summary 1")
    history = await store.history(session_id)
    assert [m.seq for m in history] == list(range(5, 11))
    # the watermark moved: the next step starts after it; an old retry commits nothing
    assert (await store.summary_work(session_id)).upto == 6
    assert not await store.commit_summary(session_id, "stale", expected_upto=0, new_upto=6)
    turn = await store.begin_turn(session_id, "after the summary")
    assert turn.summary == info.summary and turn.summary_upto == 6


async def test_ids_of_released_turns_are_forgotten_but_a_held_turn_still_replays(
    make_store: Any, session_id: str
) -> None:
    store = make_store(window_messages=2, max_messages=3)
    await conversation(store, session_id, 3)  # q-0 (1,2) q-1 (3,4) q-2 (5,6); hot 4..6
    await store.commit_summary(session_id, "s", expected_upto=0, new_upto=3)
    replay = await store.begin_turn(session_id, "question 1", message_id="q-1")  # its reply #4 is still hot
    assert replay.reply is not None and replay.reply.seq == 4
    again = await store.begin_turn(session_id, "question 0", message_id="q-0")  # released: a new message
    assert again.seq == 7 and not again.resumed
