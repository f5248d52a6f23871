"""The article's four patterns and turnstate, driven through one interface on a real server."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from turnstate import InvalidInput, Store
from turnstate.patterns import ChatPattern, TurnstatePattern, all_patterns, article_key
from turnstate.race import RaceResult, race_check, run_race

NAMES = ["json-blob", "list", "bounded", "atomic-lua", "turnstate"]
WINDOW, KEPT, TURNS = 4, 6, 10
# Messages in the prompt window (None: the whole history); the bounded pattern reads a full
# window and then adds the new message, as the article does.
WINDOW_SIZE: dict[str, int | None] = {
    "json-blob": None,
    "list": WINDOW,
    "bounded": WINDOW + 1,
    "atomic-lua": WINDOW,
    "turnstate": WINDOW,
}
# Messages still stored after TURNS turns: the list never trims; the Lua pattern trims before
# the reply is pushed, so one reply rides over the cap; turnstate archives what it trims.
STORED: dict[str, int] = {"json-blob": 20, "list": 20, "bounded": KEPT, "atomic-lua": KEPT + 1, "turnstate": 20}


def by_name(store: Store) -> dict[str, ChatPattern]:
    return {p.name: p for p in all_patterns(store)}


def conversation(turns: int) -> list[dict[str, str]]:
    out = []
    for n in range(turns):
        out += [
            {"id": f"m{n}", "role": "user", "content": f"question {n}"},
            {"id": f"m{n}:reply", "role": "assistant", "content": f"answer {n}"},
        ]
    return out


def shape(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: m[k] for k in ("id", "role", "content")} for m in messages]


async def test_all_patterns_have_distinct_names(store: Store) -> None:
    assert [p.name for p in all_patterns(store)] == NAMES


def test_article_key_is_hash_tagged_and_refuses_unsafe_ids() -> None:
    assert article_key("ts", "acme", "s1") == "ts:{acme:s1}:article"
    with pytest.raises(InvalidInput):
        article_key("ts", "acme", "s}1")


@pytest.mark.parametrize("name", NAMES)
async def test_sequential_turns_see_the_right_window_and_store_in_order(
    make_store: Any, session_id: str, name: str
) -> None:
    pattern = by_name(make_store(window_messages=WINDOW, max_messages=KEPT))[name]
    expected = conversation(TURNS)
    for n in range(TURNS):
        handle = await pattern.begin(session_id, f"question {n}", f"m{n}")
        so_far = expected[: 2 * n + 1]
        size = WINDOW_SIZE[name] or len(so_far)
        assert shape(handle.window) == so_far[-size:]
        await pattern.finish(handle, f"answer {n}")
    stored = await pattern.history(session_id)
    assert shape(stored) == expected[-STORED[name] :]
    await pattern.delete(session_id)
    assert await pattern.history(session_id) == []


TTL = [("json-blob", True), ("list", False), ("bounded", True), ("atomic-lua", True)]


@pytest.mark.parametrize(("name", "ttl"), TTL)
async def test_article_patterns_set_a_ttl_except_the_unbounded_list(
    store: Store, client: aioredis.Redis, session_id: str, name: str, ttl: bool
) -> None:
    pattern = by_name(store)[name]
    await pattern.finish(await pattern.begin(session_id, "hello", "m0"), "hi")
    seconds = await client.ttl(article_key(store.settings.key_prefix, store.settings.tenant, session_id))
    if ttl:
        assert 0 < seconds <= store.settings.ttl_seconds
    else:
        assert seconds == -1
    await pattern.delete(session_id)


async def test_turnstate_pattern_carries_the_turn_and_numbers_messages(store: Store, session_id: str) -> None:
    pattern = TurnstatePattern(store)
    handle = await pattern.begin(session_id, "hello", "m0")
    assert handle.state.seq == 1
    await pattern.finish(handle, "hi")
    stored = await pattern.history(session_id)
    assert [(m["seq"], m["id"], m["reply_to"]) for m in stored] == [(1, "m0", None), (2, "m0:reply", 1)]


# -- races: 16 turns of one session at once, each with a 20 ms "model call" --------------------

RACERS = 16


async def test_json_blob_loses_messages_when_turns_race(store: Store, session_id: str) -> None:
    report = await run_race(by_name(store)["json-blob"], session_id, turns=RACERS)
    assert report.result.lost > 0
    assert report.stored < 2 * RACERS
    assert report.result.duplicated == 0
    assert report.shared_snapshots >= 2  # turns that read the same blob, so one overwrote the other


@pytest.mark.parametrize("name", ["list", "atomic-lua"])
async def test_interleaving_patterns_keep_every_message_but_misorder_replies(
    store: Store, session_id: str, name: str
) -> None:
    report = await run_race(by_name(store)[name], session_id, turns=RACERS)
    assert report.stored == 2 * RACERS
    assert report.result.lost == report.result.duplicated == 0
    assert report.result.misordered > 0


async def test_bounded_pattern_stores_everything_but_prompts_from_a_stale_snapshot(
    store: Store, session_id: str
) -> None:
    # Its pipeline stores question and reply together (not a transaction, so adjacency is not
    # guaranteed and is not asserted); the damage is in the prompts: racing turns read the same
    # window and never see each other.
    report = await run_race(by_name(store)["bounded"], session_id, turns=RACERS)
    assert report.stored == 2 * RACERS
    assert report.result.lost == report.result.duplicated == 0
    assert report.shared_snapshots >= 2


async def test_turnstate_queue_keeps_every_turn_whole_and_in_order(store: Store, session_id: str) -> None:
    report = await run_race(TurnstatePattern(store), session_id, turns=RACERS)
    assert report.result == RaceResult(lost=0, duplicated=0, misordered=0)
    assert report.stored == 2 * RACERS
    assert report.shared_snapshots == 0  # each turn saw the one before it


async def test_turnstate_interleave_policy_behaves_like_the_article(store: Store, session_id: str) -> None:
    report = await run_race(TurnstatePattern(store, policy="interleave"), session_id, turns=RACERS)
    assert report.stored == 2 * RACERS
    assert report.result.lost == report.result.duplicated == 0
    assert report.result.misordered > 0


# -- the checker itself -------------------------------------------------------------------------


def msgs(*ids: str) -> list[dict[str, str]]:
    return [{"id": i, "role": "assistant" if i.endswith(":reply") else "user", "content": i} for i in ids]


def test_race_check_finds_nothing_wrong_in_a_serial_conversation() -> None:
    assert race_check(msgs("a", "a:reply", "b", "b:reply"), ["a", "b"]).clean


def test_race_check_counts_each_kind_of_damage() -> None:
    assert race_check(msgs("a", "a:reply"), ["a", "b"]) == RaceResult(lost=2, duplicated=0, misordered=0)
    assert race_check(msgs("a", "a:reply", "a", "a:reply"), ["a"]) == RaceResult(lost=0, duplicated=2, misordered=0)
    assert race_check(msgs("a", "b", "a:reply", "b:reply"), ["a", "b"]).misordered == 2
    assert race_check(msgs("a", "b", "b:reply", "a:reply"), ["a", "b"]).misordered == 1
    assert race_check(msgs("b:reply", "b"), ["b"]).misordered == 1


def test_race_check_counts_a_reply_whose_question_was_lost_as_loss_only() -> None:
    assert race_check(msgs("x", "a:reply"), ["a"]) == RaceResult(lost=1, duplicated=0, misordered=0)
