"""Every Redis key turnstate uses, and the id rules that keep keys from being injected.

A session's keys are `<prefix>:{<tenant>:<session>}:<part>`. The braces are a hash tag: every
key of a session lands in one cluster slot, so each script can touch them all on Redis Cluster.
Ids use a short, safe alphabet (letters, digits, `.`, `_`, `-`; 1-128 characters, starting with
a letter or digit), so no id can contain a brace, a colon or a glob character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from turnstate.errors import InvalidInput

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ID_RULE = "1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
# Message ids never enter a key name, so they may also hold ':' (as in a reply's id).
MESSAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
# A reply is stored as "<its question's id>:reply", so no client message may take such an id.
REPLY_SUFFIX = ":reply"
MESSAGE_ID_RULE = (
    f"1-200 characters from A-Z a-z 0-9 . _ : -, starting with a letter or digit, not ending in '{REPLY_SUFFIX}'"
)


def _check(value: object, pattern: re.Pattern[str], rule: str, what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        shown = repr(value)[:40] if isinstance(value, str) else type(value).__name__
        raise InvalidInput(f"invalid {what} {shown}: must be {rule}")
    return value


def validate_id(value: object, what: str) -> str:
    """Return `value` if it is a valid tenant or session id, else raise InvalidInput."""
    return _check(value, ID_PATTERN, ID_RULE, what)


def validate_message_id(value: object) -> str:
    """Return `value` if it is a valid client message id, else raise InvalidInput."""
    value = _check(value, MESSAGE_ID_PATTERN, MESSAGE_ID_RULE, "message id")
    if value.endswith(REPLY_SUFFIX):
        raise InvalidInput(f"invalid message id {value[:40]!r}: ids ending in '{REPLY_SUFFIX}' name replies")
    return value


def reply_id(message_id: str) -> str:
    """The id of the reply to the message `message_id`: never a client message's id."""
    return message_id + REPLY_SUFFIX


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The keys of one session, in the order every script receives them."""

    msgs: str  # List: the hot messages, oldest at the head
    meta: str  # Hash: seq, lease, fence, summary, watermark
    archive: str  # List: messages evicted from `msgs`, awaiting the summariser
    ids: str  # Hash: client message id -> "<seq>" or "<seq>:<reply seq>"
    wake: str  # List: a token pushed when a lease is released, for queued turns

    def all(self) -> list[str]:
        return [self.msgs, self.meta, self.archive, self.ids, self.wake]


def session_keys(prefix: str, tenant: str, session: str) -> SessionKeys:
    """Build the keys of a session after validating both ids."""
    validate_id(tenant, "tenant id")
    validate_id(session, "session id")
    base = f"{prefix}:{{{tenant}:{session}}}"
    return SessionKeys(
        msgs=f"{base}:msgs",
        meta=f"{base}:meta",
        archive=f"{base}:archive",
        ids=f"{base}:ids",
        wake=f"{base}:wake",
    )


def sessions_pattern(prefix: str, tenant: str) -> str:
    """A SCAN pattern matching one key (`meta`) per session of `tenant`; ids hold no glob characters."""
    validate_id(tenant, "tenant id")
    return f"{prefix}:{{{tenant}:*}}:meta"


def session_of(key: str, prefix: str, tenant: str) -> str:
    """The session id in a key matched by `sessions_pattern`."""
    return key[len(f"{prefix}:{{{tenant}:") : key.rindex("}")]
