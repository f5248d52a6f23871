"""The errors turnstate raises: one base class, and the few that callers act on."""

from __future__ import annotations

from typing import Literal


class TurnstateError(Exception):
    """Base of every error turnstate raises on purpose."""


class InvalidInput(TurnstateError, ValueError):
    """Bad input (an id, a role, empty or oversized content); nothing was stored."""


class SessionBusy(TurnstateError):
    """Another turn of the session holds its lease (policy `reject`, or `queue` waited too long).

    `retry_after` is how long, in seconds, until the current lease expires at the latest;
    `waited` is True when the turn was queued and gave up, False when it was rejected at once.
    """

    def __init__(self, message: str, retry_after: float, *, waited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.waited = waited


class StaleTurn(TurnstateError):
    """A turn's lease was taken over by a newer turn; its reply was refused and nothing was stored."""


class TurnGone(TurnstateError):
    """The session no longer holds the turn being finished: deleted, expired, or lost by a server
    restart without persistence. Nothing was stored; begin the turn again (the same message id)."""


class ServerUnavailable(TurnstateError, ConnectionError):
    """The Redis-protocol server could not be reached (the message names the address, never credentials)."""


class EmbeddedServerError(TurnstateError):
    """An embedded server could not be started."""


ModelErrorKind = Literal["timeout", "rate_limited", "unavailable", "auth", "bad_request"]


class ModelError(TurnstateError):
    """The chat model gave no (complete) reply; `kind` tells callers whether trying later can help.

    `retry_after` is the provider's hint in seconds, when it sent one; `status` the HTTP status,
    when there was a response. The message names the model and the cause, never the API key.
    """

    def __init__(
        self, message: str, kind: ModelErrorKind, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind: ModelErrorKind = kind
        self.retry_after = retry_after
        self.status = status

    @property
    def transient(self) -> bool:
        """True when the same request may succeed later (timeouts, rate limits, outages)."""
        return self.kind in ("timeout", "rate_limited", "unavailable")


class EmbeddingError(TurnstateError):
    """No embeddings could be had; `kind` (as for ModelError) tells callers whether trying later can help.

    The message names the embedder and the cause, never an API key.
    """

    def __init__(self, message: str, kind: ModelErrorKind, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: ModelErrorKind = kind
        self.status = status

    @property
    def transient(self) -> bool:
        """True when the same request may succeed later (timeouts, rate limits, outages)."""
        return self.kind in ("timeout", "rate_limited", "unavailable")


class MemoryUnavailable(TurnstateError, ConnectionError):
    """Long-term memory cannot be used: its database is unreachable, lacks pgvector, or was built for another embedder.

    The message names the database's host and port (or socket directory), never a password.
    """
