"""Per-tenant rate limits, counted by the `limits` package in the service's own Redis.

The count lives in Redis, not in the process, so every replica of the service shares it. The
strategy is limits' sliding window counter: two counters per limit and tenant (O(1) memory, one
script call per request), and unlike a fixed window it never lets twice the limit through
around a window boundary. Requests are counted per tenant (the API key's, or the default tenant
in local mode): a tenant's keys are its credentials, so rotating to a second key does not double
its budget. Requests refused before authentication (401) or as malformed (413, 422) are not
counted: they cost neither Redis nor the model.
"""

from __future__ import annotations

import time
from typing import cast

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio.cluster import RedisCluster

from turnstate.connection import unavailable_as
from turnstate.errors import TurnstateError
from turnstate.store import Store


class RateLimited(TurnstateError):
    """The caller's tenant is over its rate limit; `retry_after` is a hint in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_limit(text: str | None) -> list[RateLimitItem]:
    """`TURNSTATE_RATE_LIMIT` in limits' notation ("200/second;6000/minute"); unset, empty or `none`: no limit."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    return parse_many(text)


class RateLimiter:
    """Counts requests per tenant against every configured limit; shared by all replicas on one Redis."""

    def __init__(self, storage: RedisStorage, items: list[RateLimitItem], address: str) -> None:
        self.storage = storage
        self.items = items
        self.address = address
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    @classmethod
    def for_store(cls, store: Store, limit: str | None) -> RateLimiter | None:
        """A limiter on the store's server (None when no limit is set).

        A plain server shares the store's connection pool (its URL, TLS and credentials); a
        cluster (`redis+cluster://`) gets its own cluster client from the store's URL.
        """
        items = parse_limit(limit)
        if not items:
            return None
        prefix = f"{store.settings.key_prefix}:ratelimit"
        storage: RedisStorage
        if isinstance(store.client, RedisCluster):
            if store.url is None:
                raise ValueError("a rate limit on a cluster needs the store's URL")
            scheme, _, rest = store.url.partition("://")
            tls = scheme == "rediss+cluster"
            uri = f"async+redis+cluster://{rest}"
            storage = RedisClusterStorage(uri, implementation="redispy", key_prefix=prefix, ssl=tls)
        else:
            pool = store.client.connection_pool
            # limits passes `connection_pool` on to redis-py (its stubs type options as scalars only).
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=prefix,
                connection_pool=pool,  # type: ignore[arg-type]
            )
        return cls(storage, items, store.address)

    async def hit(self, tenant: str) -> None:
        """Count one request of `tenant`; raise RateLimited if any limit is exhausted."""
        async with unavailable_as(self.address):
            for item in self.items:
                if not await self._limiter.hit(item, tenant):
                    stats = await self._limiter.get_window_stats(item, tenant)
                    wait = max(1.0, stats.reset_time - time.time())
                    raise RateLimited(f"rate limit exceeded ({item}); retry in {wait:.0f} s", wait)

    async def aclose(self) -> None:
        """Close the cluster client the limiter opened (a plain server's pool is the store's)."""
        if isinstance(self.storage, RedisClusterStorage):
            client = cast(RedispyBridge, self.storage.bridge).get_connection()
            await cast(RedisCluster, client).aclose()
