"""Messages to bytes and back.

The client encodes everything but `seq` and `ts` as a compact JSON object whose first field is
`tokens`; the turn scripts prepend `{"seq":N,"ts":T,` on the server, so sequence numbers and
timestamps come from one clock and one counter, and a script can read a stored message's token
count with one anchored pattern instead of decoding JSON.
"""

from __future__ import annotations

import json
from typing import Any

from turnstate.types import Message

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_body(*, message_id: str, role: str, content: str, tokens: int, reply_to: int | None = None) -> str:
    """The stored form of a message, minus the `seq` and `ts` the script adds in front."""
    fields: dict[str, Any] = {"tokens": tokens, "id": message_id, "role": role, "content": content}
    if reply_to is not None:
        fields["reply_to"] = reply_to
    return _compact(fields)


def decode(raw: bytes | str) -> Message:
    """A stored message back as a Message."""
    d = json.loads(raw)
    return Message(
        seq=d["seq"],
        id=d["id"],
        role=d["role"],
        content=d["content"],
        tokens=d["tokens"],
        ts=d["ts"],
        reply_to=d.get("reply_to"),
    )


def decode_all(raws: list[Any]) -> tuple[Message, ...]:
    return tuple(decode(r) for r in raws)
