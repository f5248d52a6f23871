"""Redis clients: built from a URL, and their failures turned into errors that name the address.

Error messages show scheme, host and port (or the socket path), never a user name or password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from turnstate.errors import InvalidInput, ServerUnavailable

SCHEMES = ("redis", "rediss", "unix")


def redacted(url: str) -> str:
    """The URL's address without credentials: safe to log and to show."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}:{parts.port or 6379}"


def make_client(url: str, *, connect_timeout: float) -> aioredis.Redis:
    """A pooled asyncio client for `url` (redis://, rediss:// for TLS, unix://)."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise InvalidInput(f"unsupported Redis URL scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    # No socket timeout (redis-py's default is 5 s): a queued turn blocks on BLPOP for as long as
    # the turn ahead of it holds the lease, and that wait is bounded by the store itself.
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=connect_timeout, socket_timeout=None, health_check_interval=30
    )


@asynccontextmanager
async def unavailable_as(address: str) -> AsyncIterator[None]:
    """Re-raise connection failures as ServerUnavailable naming `address`."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise ServerUnavailable(f"cannot reach the Redis server at {address}: {exc}") from exc
