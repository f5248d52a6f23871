"""The errors turnstate raises: one base class, and the few that callers act on."""

from __future__ import annotations


class TurnstateError(Exception):
    """Base of every error turnstate raises on purpose."""


class InvalidInput(TurnstateError, ValueError):
    """Bad input (an id, a role, empty or oversized content); nothing was stored."""


class SessionBusy(TurnstateError):
    """Another turn of the session holds its lease (policy `reject`, or `queue` waited too long).

    `retry_after` is how long, in seconds, until the current lease expires at the latest.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StaleTurn(TurnstateError):
    """A turn's lease was taken over by a newer turn; its reply was refused and nothing was stored."""


class ServerUnavailable(TurnstateError, ConnectionError):
    """The Redis-protocol server could not be reached (the message names the address, never credentials)."""


class EmbeddedServerError(TurnstateError):
    """An embedded server could not be started."""
