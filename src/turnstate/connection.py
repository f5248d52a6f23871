"""Redis clients: built from a URL, and their failures turned into errors that name the address.

Error messages show scheme, host and port (or the socket path), never a user name or password.
A `+cluster` scheme (`redis+cluster://`, `rediss+cluster://`) selects redis-py's cluster client;
the turn protocol needs nothing else, since every key of a session shares one hash slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ClusterError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from turnstate.errors import InvalidInput, ServerUnavailable

CLUSTER_SUFFIX = "+cluster"
SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")

Client: TypeAlias = aioredis.Redis | RedisCluster
"""A plain or cluster asyncio client: both speak every command the store sends."""


def redacted(url: str) -> str:
    """The URL's address without credentials: safe to log and to show."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}:{parts.port or 6379}"


# redis-py's asyncio pool allows 100 connections and then fails at once ("Too many connections");
# a queued turn holds one while it waits, so a busy service needs more.
MAX_CONNECTIONS = 1_000

# A dropped connection (a server restart, a failover, an idle timeout, CLIENT KILL) is retried on
# a fresh connection after 0.05-0.1 s, 0.1-0.2 s, ... up to 1 s apart: five retries ride through
# about 1.2-2.5 s of unavailability. redis-py's asyncio client retries nothing unless told, so
# without this every pooled connection fails one request after a restart. A retried script may
# already have run: every script is idempotent (client message ids, fences, compare-and-set).
RETRIES = 5
RETRY_BACKOFF = EqualJitterBackoff(cap=1.0, base=0.05)


def retry_policy(retries: int) -> Retry:
    """Retries on connection errors and timeouts, with jittered exponential backoff."""
    return Retry(RETRY_BACKOFF, retries)


def make_client(
    url: str, *, connect_timeout: float, max_connections: int = MAX_CONNECTIONS, retries: int = RETRIES
) -> aioredis.Redis:
    """A pooled asyncio client for one server: redis://, rediss:// (TLS) or unix://."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise InvalidInput(f"unsupported Redis URL scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    if scheme.endswith(CLUSTER_SUFFIX):
        raise InvalidInput(f"{scheme}:// names a cluster: open it with make_any_client()")
    # No socket timeout (redis-py's default is 5 s): a queued turn blocks on BLPOP for as long as
    # the turn ahead of it holds the lease, and that wait is bounded by the store itself.
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=None,
        health_check_interval=30,
        max_connections=max_connections,
        retry=retry_policy(retries),
    )


def make_cluster_client(url: str, *, connect_timeout: float, max_connections: int = MAX_CONNECTIONS) -> RedisCluster:
    """A cluster client for `redis+cluster://` or `rediss+cluster://` (any one node of the cluster).

    `max_connections` is per node (redis-py's default is 100 there too).
    """
    scheme = urlsplit(url).scheme
    if not scheme.endswith(CLUSTER_SUFFIX) or scheme not in SCHEMES:
        raise InvalidInput(f"{scheme!r} is not a cluster scheme: use redis+cluster:// or rediss+cluster://")
    # The client learns the other nodes, and each slot's owner, from the one it is given.
    plain = scheme.removesuffix(CLUSTER_SUFFIX) + url[len(scheme) :]
    return RedisCluster.from_url(
        plain,
        socket_connect_timeout=connect_timeout,
        socket_timeout=None,
        health_check_interval=30,
        max_connections=max_connections,
    )


def make_any_client(
    url: str, *, connect_timeout: float, max_connections: int = MAX_CONNECTIONS, retries: int = RETRIES
) -> Client:
    """The client `url` asks for: a cluster client for a `+cluster` scheme (its own retries), else a plain one."""
    if urlsplit(url).scheme.endswith(CLUSTER_SUFFIX):
        return make_cluster_client(url, connect_timeout=connect_timeout, max_connections=max_connections)
    return make_client(url, connect_timeout=connect_timeout, max_connections=max_connections, retries=retries)


@asynccontextmanager
async def unavailable_as(address: str) -> AsyncIterator[None]:
    """Re-raise connection failures as ServerUnavailable naming `address`.

    A cluster client reports an unreachable or unready cluster as its own errors (no reachable
    startup node, CLUSTERDOWN, retries exhausted by redirections): those are unavailability too.
    """
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError, RedisClusterException, ClusterError) as exc:
        raise ServerUnavailable(f"cannot reach the Redis server at {address}: {exc}") from exc
