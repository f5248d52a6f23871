"""The delay proxy: exact counts of round trips and bytes, a delay of at least what was asked, bounds."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from turnstate.bench.driver import proxied_url
from turnstate.bench.proxy import DelayProxy, delay_proxy_process
from turnstate.connection import make_client

PING_UP = len(b"*1\r\n$4\r\nPING\r\n")
PONG_DOWN = len(b"+PONG\r\n")


def target(redis_url: str) -> tuple[str, int]:
    parts = urlsplit(redis_url)
    if parts.scheme != "redis":
        pytest.skip("the proxy forwards TCP (redis://) servers only")
    return parts.hostname or "127.0.0.1", parts.port or 6379


async def test_counts_round_trips_and_bytes_exactly(redis_url: str) -> None:
    async with DelayProxy(*target(redis_url)) as proxy:
        client = make_client(proxied_url(redis_url, proxy.port), connect_timeout=5)
        try:
            await client.ping()  # the connection's handshake
            before = proxy.stats.copy()
            await client.ping()
            assert proxy.stats.round_trips - before.round_trips == 1
            assert proxy.stats.bytes_up - before.bytes_up == PING_UP
            assert proxy.stats.bytes_down - before.bytes_down == PONG_DOWN
            before = proxy.stats.copy()
            pipe = client.pipeline(transaction=False)
            for _ in range(3):
                pipe.ping()
            await pipe.execute()
            assert proxy.stats.round_trips - before.round_trips == 1  # a pipeline is one round trip
            assert proxy.stats.bytes_up - before.bytes_up == 3 * PING_UP
        finally:
            await client.aclose()


async def ping_seconds(client: aioredis.Redis) -> float:
    await client.ping()  # connect first
    start = time.perf_counter()
    await client.ping()
    return time.perf_counter() - start


async def test_holds_each_request_back_by_the_delay(redis_url: str) -> None:
    async with DelayProxy(*target(redis_url), delay_seconds=0.03) as proxy:
        client = make_client(proxied_url(redis_url, proxy.port), connect_timeout=5)
        try:
            assert await ping_seconds(client) >= 0.03
        finally:
            await client.aclose()


async def test_runs_as_its_own_process(redis_url: str) -> None:
    async with delay_proxy_process(*target(redis_url), 30.0) as port:
        client = make_client(proxied_url(redis_url, port), connect_timeout=5)
        try:
            assert await ping_seconds(client) >= 0.03
        finally:
            await client.aclose()


async def test_refuses_connections_past_its_bound(redis_url: str) -> None:
    async with DelayProxy(*target(redis_url), max_connections=1) as proxy:
        first = make_client(proxied_url(redis_url, proxy.port), connect_timeout=5)
        second = make_client(proxied_url(redis_url, proxy.port), connect_timeout=5)
        try:
            assert await first.ping()
            with pytest.raises(Exception, match=r"(?i)connection|closed"):
                await second.ping()
            assert proxy.stats.refused >= 1
        finally:
            await first.aclose()
            await second.aclose()


def test_proxied_url_keeps_credentials_and_database() -> None:
    assert proxied_url("redis://u:p@10.0.0.1:6380/3", 4000) == "redis://u:p@127.0.0.1:4000/3"
    assert proxied_url("redis://127.0.0.1:6379/0", 4000) == "redis://127.0.0.1:4000/0"
