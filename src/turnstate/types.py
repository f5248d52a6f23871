"""The values turnstate hands back: messages, turns, session facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))


class Policy(StrEnum):
    """What happens when turns of one session overlap."""

    QUEUE = "queue"  # wait for the running turn to finish (or its lease to expire)
    REJECT = "reject"  # fail at once with SessionBusy
    INTERLEAVE = "interleave"  # no lease: the article's behaviour, kept for comparison


@dataclass(frozen=True)
class Message:
    """One stored message. `seq` is assigned by the server and orders the session.

    No `__slots__`: the codec builds one from a decoded JSON object by installing the dict as
    its `__dict__`, which is what makes decoding a prompt window cheap.
    """

    seq: int
    id: str
    role: Role
    content: str
    tokens: int
    ts: int  # server time, milliseconds since the epoch
    reply_to: int | None = None  # for an assistant reply: the seq of the user message it answers


@dataclass(frozen=True, slots=True)
class Turn:
    """A turn in progress: the stored user message and the context to prompt the model with.

    `messages` is the prompt window, oldest first, bounded by message count and token budget.
    `reply` is set when a retried message id names a turn that has already been answered.
    """

    tenant: str
    session: str
    seq: int
    message_id: str
    fence: int
    messages: tuple[Message, ...]
    summary: str | None = None
    summary_upto: int = 0
    summary_due: bool = False
    reply: Message | None = None
    resumed: bool = False  # True when this message id had been stored by an earlier attempt

    @property
    def answered(self) -> bool:
        return self.reply is not None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What a session holds right now."""

    tenant: str
    session: str
    last_seq: int
    hot: int  # messages in the hot list
    archived: int  # evicted messages awaiting the summariser
    summary: str | None
    summary_upto: int
    ttl_seconds: float | None  # None: the session does not exist
    lease_held: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class SummaryWork:
    """The next summary step of a session: fold `messages` (seq upto+1..target) into `summary`."""

    summary: str | None
    upto: int
    target: int
    messages: tuple[Message, ...]
