"""Messages to bytes and back: a decoded message is an ordinary, immutable Message."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from turnstate import Message
from turnstate.codec import decode, decode_many, encode_body


def stored(seq: int, ts: int, body: str) -> bytes:
    """What a turn script stores: the body with `seq` and `ts` put in front."""
    return f'{{"seq":{seq},"ts":{ts},{body[1:]}'.encode()


USER = Message(seq=1, id="m-1", role="user", content='Grüße, 世界 "quoted"\n', tokens=7, ts=1_700_000_000_000)
REPLY = Message(seq=2, id="m-1:reply", role="assistant", content="Hi", tokens=1, ts=1_700_000_000_001, reply_to=1)


def raw(m: Message) -> bytes:
    body = encode_body(message_id=m.id, role=m.role, content=m.content, tokens=m.tokens, reply_to=m.reply_to)
    return stored(m.seq, m.ts, body)


@pytest.mark.parametrize("message", [USER, REPLY])
def test_a_message_round_trips_equal_to_one_built_the_ordinary_way(message: Message) -> None:
    decoded = decode(raw(message))
    assert decoded == message
    assert hash(decoded) == hash(message)
    assert repr(decoded) == repr(message)
    assert dataclasses.asdict(decoded) == dataclasses.asdict(message)
    assert pickle.loads(pickle.dumps(decoded)) == message


def test_a_decoded_message_is_immutable() -> None:
    decoded = decode(raw(USER))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.content = "changed"  # type: ignore[misc]
    assert decoded.reply_to is None


def test_many_messages_decode_in_order_with_one_call() -> None:
    assert decode_many([raw(USER), raw(REPLY)]) == (USER, REPLY)
    assert decode_many([]) == ()


def test_the_body_starts_with_the_token_count_the_scripts_read() -> None:
    assert encode_body(message_id="m", role="user", content="x", tokens=12).startswith('{"tokens":12,')


@pytest.mark.parametrize(
    "content", ["plain", 'quotes " and \\ backslash', "tab\tnewline\n\x00\x1f", "é 世界 \U0001f600 \u2028", ""]
)
@pytest.mark.parametrize("reply_to", [None, 41])
def test_the_body_is_the_compact_json_the_standard_encoder_writes(content: str, reply_to: int | None) -> None:
    fields: dict[str, object] = {"tokens": 3, "id": "m:1", "role": "tool", "content": content}
    if reply_to is not None:
        fields["reply_to"] = reply_to
    expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert encode_body(message_id="m:1", role="tool", content=content, tokens=3, reply_to=reply_to) == expected
