"""Per-tenant rate limits (api/ratelimit.py): enforced per key, shared through Redis, off when asked."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.apps import serving
from tests.service import KEYS
from turnstate.api.ratelimit import RateLimited, RateLimiter
from turnstate.config import Settings

ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"X-API-Key": "key-globex"}


@pytest.fixture
def settings(make_settings: Any, redis_url: str) -> Any:
    """Settings of a keyed service on the test server, with the given rate limit."""

    def make(rate_limit: str | None, **overrides: Any) -> Settings:
        values = {"auth": "keys", "api_keys": json.dumps(KEYS), **overrides}
        return make_settings(redis_url=redis_url, memory=False, rate_limit=rate_limit, **values)  # type: ignore[no-any-return]

    return make


async def test_a_key_over_its_limit_gets_429_with_retry_after(settings: Any) -> None:
    async with serving(settings("3/minute"), **ACME) as api:
        statuses = [(await api.get("/v1/sessions/s-1/messages")).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        r = await api.post("/v1/sessions/s-1/turns", json={"message": "hi"})
        assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["title"] == "Too many requests" and "3 per 1 minute" in r.json()["detail"]
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        # the OpenAI-compatible endpoint answers in OpenAI's shape, which its SDKs back off on
        body = {"messages": [{"role": "user", "content": "hi"}], "user": "s-1"}
        r = await api.post("/v1/chat/completions", json=body)
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_exceeded"
        assert "Retry-After" in r.headers
        # nothing was stored by the refused turns, and health checks are never limited
        assert (await api.get("/readyz")).status_code == 200
        assert 'turnstate_errors_total{kind="RateLimited"} 4.0' in (await api.get("/metrics")).text


async def test_two_keys_are_counted_apart(settings: Any) -> None:
    async with serving(settings("3/minute")) as api:
        acme = [(await api.get("/v1/sessions/s/messages", headers=ACME)).status_code for _ in range(4)]
        globex = [(await api.get("/v1/sessions/s/messages", headers=GLOBEX)).status_code for _ in range(3)]
        assert acme == [200, 200, 200, 429] and globex == [200, 200, 200]


async def test_two_app_instances_share_the_count_through_redis(settings: Any) -> None:
    async with serving(settings("3/minute"), **ACME) as one, serving(settings("3/minute"), **ACME) as two:
        statuses = [(await api.get("/v1/sessions/s/messages")).status_code for api in (one, two, one, two)]
        assert statuses == [200, 200, 200, 429]


async def test_local_mode_limits_the_default_tenant(settings: Any) -> None:
    async with serving(settings("2/minute", auth="local", api_keys=None)) as api:
        assert [(await api.get("/v1/sessions/s/messages")).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("off", ["none", "", None])
async def test_no_limit_when_turned_off(settings: Any, off: str | None) -> None:
    async with serving(settings(off), **ACME) as api:
        assert {(await api.get("/v1/sessions/s/messages")).status_code for _ in range(12)} == {200}


def test_a_malformed_limit_fails_at_start_up(make_settings: Any) -> None:
    for bad in ("3 per fortnight", "many/minute"):
        with pytest.raises(ValueError, match=f"'{bad}' is not like"):
            make_settings(rate_limit=bad)
    assert Settings().rate_limit == "200/second;6000/minute"


async def test_the_limit_works_on_a_cluster(make_cluster_store: Any) -> None:
    limiter = RateLimiter.for_store(make_cluster_store(), "3/minute")
    assert limiter is not None
    try:
        for _ in range(3):
            await limiter.hit("acme")
        with pytest.raises(RateLimited) as refused:
            await limiter.hit("acme")
        assert 1 <= math.ceil(refused.value.retry_after) <= 60
        await limiter.hit("globex")
    finally:
        await limiter.aclose()
