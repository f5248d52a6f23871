"""Token counting: the default rule, and the store using whichever counter it is given."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from turnstate import ApproximateCounter, CallableCounter, Store, TokenCounter


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("word " * 10, 13),  # 50 bytes
        ("你好世界", 3),  # 12 bytes: about one token a character, as BPE tokenizers count CJK
        ("\U0001f600", 1),  # one emoji, 4 bytes
    ],
)
def test_default_is_one_token_per_four_utf8_bytes_rounded_up(text: str, tokens: int) -> None:
    assert ApproximateCounter().count(text) == tokens


def test_default_counts_a_lone_surrogate_instead_of_failing() -> None:
    assert ApproximateCounter().count("a\ud800") == 1


def test_counters_satisfy_the_protocol() -> None:
    assert isinstance(ApproximateCounter(), TokenCounter)
    assert isinstance(CallableCounter(len), TokenCounter)


async def test_store_counts_as_the_default_counter_does(store: Store, session_id: str) -> None:
    text = "¿Qué tal? 你好, and some plain words."
    turn = await store.begin_turn(session_id, text)
    reply = await store.finish_turn(turn, text * 3)
    assert turn.messages[-1].tokens == ApproximateCounter().count(text)
    assert reply.tokens == ApproximateCounter().count(text * 3)


async def test_store_uses_the_counter_it_is_given(client: aioredis.Redis, make_settings: Any, session_id: str) -> None:
    store = Store(client, make_settings(), token_counter=CallableCounter(lambda text: 7 * len(text.split())))
    turn = await store.begin_turn(session_id, "three words here")
    reply = await store.finish_turn(turn, "two words")
    note = await store.append(session_id, "system", "one")
    assert (turn.messages[-1].tokens, reply.tokens, note.tokens) == (21, 14, 7)
    assert [m.tokens for m in await store.history(session_id)] == [21, 14, 7]
