"""The turn protocol on a real server: sequence, window, archive, idempotency, TTLs, keys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from tests.helpers import assert_consistent, one_turn
from turnstate import ServerUnavailable, Store
from turnstate.connection import make_client
from turnstate.keys import session_keys


async def test_turns_get_sequence_numbers_and_reply_links(store: Store, session_id: str) -> None:
    turn = await store.begin_turn(session_id, "Hello!", message_id="m-1")
    assert (turn.seq, turn.resumed, turn.reply) == (1, False, None)
    assert [(m.role, m.content) for m in turn.messages] == [("user", "Hello!")]
    reply = await store.finish_turn(turn, "Hi! How can I help?")
    assert (reply.seq, reply.reply_to, reply.role, reply.id) == (2, 1, "assistant", "m-1:reply")
    second = await store.begin_turn(session_id, "Tell me more", message_id="m-2")
    assert [m.seq for m in second.messages] == [1, 2, 3]
    assert second.messages[-1].content == "Tell me more"
    await store.finish_turn(second, "Sure.")
    assert_consistent(await store.history(session_id), expected_turns=2, answers=False)


async def test_window_is_bounded_by_message_count(make_store: Any, session_id: str) -> None:
    store = make_store(window_messages=5, max_messages=8)
    for n in range(6):
        await one_turn(store, session_id, n, think=0)
    turn = await store.begin_turn(session_id, "last", message_id="last")
    assert [m.seq for m in turn.messages] == [9, 10, 11, 12, 13]
    assert turn.messages[-1].content == "last"


async def test_window_is_bounded_by_token_budget(make_store: Any, session_id: str) -> None:
    store = make_store(window_tokens=20)
    for n in range(5):
        await store.append(session_id, "system", "word " * 10, message_id=f"s-{n}")  # 50 bytes: 13 tokens each
    turn = await store.begin_turn(session_id, "one two four five", message_id="u")  # 17 bytes: 5 tokens
    assert sum(m.tokens for m in turn.messages) <= 20
    assert [m.seq for m in turn.messages] == [5, 6]  # 5 + 13 + 13 would not fit


async def test_newest_message_is_kept_even_over_budget(make_store: Any, session_id: str) -> None:
    store = make_store(window_tokens=3)
    turn = await store.begin_turn(session_id, "this message alone is well over three tokens", message_id="u")
    assert [m.content for m in turn.messages] == ["this message alone is well over three tokens"]


async def test_evicted_messages_move_to_the_archive_in_order(make_store: Any, session_id: str) -> None:
    store = make_store(window_messages=4, max_messages=6)
    for n in range(10):
        await one_turn(store, session_id, n, think=0)
    info = await store.info(session_id)
    assert (info.last_seq, info.hot, info.archived) == (20, 6, 14)
    history = await store.history(session_id)
    assert [m.seq for m in history] == list(range(1, 21))
    assert_consistent(history, expected_turns=10)


async def test_retry_of_an_answered_message_returns_the_stored_reply(store: Store, session_id: str) -> None:
    first = await store.begin_turn(session_id, "Hello!", message_id="m-1")
    reply = await store.finish_turn(first, "Hi!")
    again = await store.begin_turn(session_id, "Hello!", message_id="m-1")
    assert (again.seq, again.resumed, again.reply) == (first.seq, True, reply)
    assert await store.finish_turn(again, "a different reply") == reply
    assert await store.finish_turn(first, "and another") == reply
    assert len(await store.history(session_id)) == 2


async def test_retry_of_an_unanswered_message_resumes_it(store: Store, session_id: str) -> None:
    first = await store.begin_turn(session_id, "Hello!", message_id="m-1")
    assert await store.abort_turn(first)  # the model call failed
    again = await store.begin_turn(session_id, "Hello!", message_id="m-1")
    assert (again.seq, again.resumed, again.reply) == (first.seq, True, None)
    assert again.fence > first.fence
    await store.finish_turn(again, "Hi!")
    assert_consistent(await store.history(session_id), expected_turns=1, answers=False)


async def test_append_stores_system_and_tool_messages_once(store: Store, session_id: str) -> None:
    system = await store.append(session_id, "system", "Be brief.", message_id="sys-1")
    again = await store.append(session_id, "system", "Be brief.", message_id="sys-1")
    assert system == again
    turn = await store.begin_turn(session_id, "What's the weather?", message_id="u-1")
    tool = await store.append(session_id, "tool", '{"temp": 21}', message_id="tool-1", turn=turn)
    reply = await store.finish_turn(turn, "It is 21 degrees.")
    history = await store.history(session_id)
    assert [(m.seq, m.role) for m in history] == [(1, "system"), (2, "user"), (3, "tool"), (4, "assistant")]
    assert tool.seq == 3 and reply.reply_to == 2


async def test_tenants_do_not_share_sessions(store: Store, session_id: str) -> None:
    a = await store.begin_turn(session_id, "from tenant a", tenant="acme")
    b = await store.begin_turn(session_id, "from tenant b", tenant="globex")
    assert a.seq == b.seq == 1
    assert [m.content for m in await store.history(session_id, tenant="acme")] == ["from tenant a"]
    assert [m.content for m in await store.history(session_id, tenant="globex")] == ["from tenant b"]
    assert await store.history(session_id) == []


async def test_every_key_of_a_session_shares_one_cluster_slot(store: Store, session_id: str) -> None:
    keys = session_keys(store.settings.key_prefix, "acme", session_id)
    assert len({key_slot(k.encode()) for k in keys.all()}) == 1


@pytest.mark.parametrize("write", ["append", "abort_turn"])
async def test_every_write_refreshes_the_ttl_of_every_key(
    make_store: Any, client: aioredis.Redis, session_id: str, key_prefix: str, write: str
) -> None:
    store = make_store(ttl_seconds=1000, max_messages=2, window_messages=2)
    await one_turn(store, session_id, 1, think=0)
    await one_turn(store, session_id, 2, think=0)  # evicts to the archive
    failing = (
        await store.begin_turn(session_id, "the model call fails", message_id="f") if write == "abort_turn" else None
    )
    keys = session_keys(key_prefix, "default", session_id)
    for key in (keys.msgs, keys.meta, keys.archive, keys.ids):
        await client.pexpire(key, 5_000)
    if failing is None:
        await store.append(session_id, "system", "note")
    else:
        assert await store.abort_turn(failing)
    for key in (keys.msgs, keys.meta, keys.archive, keys.ids):
        assert await client.pttl(key) > 900_000, key


async def test_every_key_left_behind_has_a_ttl(
    make_store: Any, client: aioredis.Redis, session_id: str, key_prefix: str
) -> None:
    store = make_store(max_messages=4, window_messages=2)
    for n in range(5):
        await one_turn(store, session_id, n, think=0)
    crashed = await store.begin_turn(session_id, "never answered", message_id="crash")
    assert crashed.reply is None
    await store.append(f"{session_id}-b", "system", "hello", tenant="other")
    keys = [k async for k in client.scan_iter(match=f"{key_prefix}:*")]
    assert len(keys) == 8  # msgs, meta, archive, ids, wake of one session; msgs, meta, ids of the other
    for key in keys:
        assert await client.ttl(key) > 0, key


async def test_delete_removes_the_session(store: Store, session_id: str) -> None:
    await one_turn(store, session_id, 1, think=0)
    assert await store.delete(session_id)
    assert await store.history(session_id) == []
    assert (await store.info(session_id)).ttl_seconds is None
    assert not await store.delete(session_id)


async def test_info_reports_counts_lease_and_ttl(store: Store, session_id: str) -> None:
    turn = await store.begin_turn(session_id, "Hello!")
    info = await store.info(session_id)
    assert (info.last_seq, info.hot, info.archived, info.lease_held) == (1, 1, 0, True)
    assert info.ttl_seconds is not None and 0 < info.ttl_seconds <= store.settings.ttl_seconds
    await store.finish_turn(turn, "Hi")
    assert not (await store.info(session_id)).lease_held


@pytest.mark.parametrize("every", [3, 5])
async def test_summary_due_flag_comes_back_with_the_turn(make_store: Any, session_id: str, every: int) -> None:
    store = make_store(summary_every=every, window_messages=2)
    flags = []
    for n in range(4):
        turn = await store.begin_turn(session_id, f"q{n}", message_id=f"q{n}")
        flags.append(turn.summary_due)
        await store.finish_turn(turn, "a")
    # begin sees seq 1, 3, 5, 7: with a 2-message window, -1, 1, 3, 5 messages have left it unsummarised
    assert flags == [n >= every for n in (-1, 1, 3, 5)]


async def test_a_turn_against_an_unreachable_server_raises_server_unavailable(make_settings: Any) -> None:
    store = Store(make_client("redis://127.0.0.1:1/0", connect_timeout=1), make_settings())
    try:
        with pytest.raises(ServerUnavailable, match=r"127\.0\.0\.1:1"):
            await store.begin_turn("s-1", "Hello!")
        assert store.round_trips == 1
    finally:
        await store.aclose()


async def test_a_queued_turn_is_woken_after_earlier_turns_left_a_wake_token(make_store: Any, session_id: str) -> None:
    # Releases nobody waited for leave one token on the session's wake list; a turn that queues
    # later takes that one at once, finds the session still busy, and must still be woken.
    store = make_store(lease_seconds=60)
    for n in range(3):
        await one_turn(store, session_id, n, think=0)
    first = await store.begin_turn(session_id, "first", message_id="first")
    queued = asyncio.create_task(store.begin_turn(session_id, "second", message_id="second"))
    await asyncio.sleep(0.05)
    assert not queued.done()
    await store.finish_turn(first, "done")
    second = await asyncio.wait_for(queued, timeout=5)  # woken, not left waiting for the 60 s lease
    assert [m.id for m in second.messages][-3:] == ["first", "first:reply", "second"]
