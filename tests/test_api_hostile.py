"""Hostile input to a real service process: every request gets a clean 4xx problem (never a 5xx,
never a stack trace) and leaves every stored key exactly as it was."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis

ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"X-API-Key": "key-globex"}
LIMIT = 65_536  # the service's max_request_bytes (the default)
JSON = {"content-type": "application/json"}


@pytest.fixture
async def api(offline_service: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=offline_service.url, headers=ACME, timeout=10) as client:
        yield client


@pytest.fixture
async def victim(api: httpx.AsyncClient) -> str:
    """An acme session holding one answered turn: what every attack below must leave alone."""
    sid = f"victim-{uuid.uuid4().hex[:8]}"
    r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "acme's secret plan", "message_id": "m-1"})
    assert r.status_code == 200, r.text
    return sid


async def stored(client: aioredis.Redis, prefix: str) -> dict[bytes, Any]:
    """Every key under the service's prefix with its value (not its TTL)."""
    found: dict[bytes, Any] = {}
    async for key in client.scan_iter(match=f"{prefix}:*"):
        kind = await client.type(key)
        if kind == b"list":
            found[key] = await client.lrange(key, 0, -1)
        elif kind == b"hash":
            found[key] = await client.hgetall(key)
        else:
            found[key] = (kind, await client.dump(key))
    return found


@asynccontextmanager
async def nothing_stored(client: aioredis.Redis, prefix: str) -> AsyncIterator[None]:
    before = await stored(client, prefix)
    assert before, "the victim's keys are there"
    yield
    assert await stored(client, prefix) == before


def refused(r: httpx.Response, *statuses: int, openai_style: bool = False) -> None:
    """A clean refusal: an expected 4xx, a problem (or OpenAI's error shape), no trace of the code."""
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert "Traceback" not in r.text and 'File "' not in r.text
    body = r.json()
    if openai_style:
        assert r.headers["content-type"] == "application/json"
        assert body["error"]["code"] == r.status_code and body["error"]["message"]
    else:
        assert r.headers["content-type"] == "application/problem+json"
        assert body["status"] == r.status_code and body["title"] and body["detail"]


# Percent-encoded as they appear in a URL path. Ids with `/` or `..` may not route at all (404);
# the rest reach the route and its id rule (422).
BAD_SESSION_IDS = [
    "%7Bx%7D",  # {x}: a hash tag of its own
    "a%7D%3A%7Bb",  # a}:{b
    "a%3Ab",  # a:b, a key separator
    "%2A",  # *, a glob
    "a%3F",  # a?
    "a%5Bb%5D",  # a[b]
    "new%0Aline",
    "tab%09here",
    "a%20b",
    "a%00b",
    "x" * 129,
    "x" * 2_000,
    "%D1%95ession",  # a Cyrillic look-alike s
    "%EF%BD%81",  # fullwidth a
    "-dash-first",
    "%2E%2E",  # ..
    "%2E%2E%2F%2E%2E%2Fv1",  # ../../v1
    "a%2F..%2Fvictim",  # a/../victim
    "..%5Cvictim",  # ..\victim
]


@pytest.mark.parametrize("bad", BAD_SESSION_IDS)
async def test_injected_session_ids_are_refused_everywhere(
    api: httpx.AsyncClient, client: aioredis.Redis, service_prefix: str, victim: str, bad: str
) -> None:
    async with nothing_stored(client, service_prefix):
        base = f"/v1/sessions/{bad}"
        refused(await api.post(f"{base}/turns", json={"message": "hi"}), 404, 422)
        refused(await api.get(f"{base}/messages"), 404, 422)
        refused(await api.get(base), 404, 422)
        refused(await api.delete(base), 404, 422)
        raw = unquote(bad)  # the same id in the body, and in a header where a header can carry it
        header = {"X-Session-Id": raw} if raw.isascii() and raw.isprintable() else {}
        completion = {"messages": [{"role": "user", "content": "hi"}], "user": raw}
        refused(await api.post("/v1/chat/completions", json=completion, headers=header), 422, openai_style=True)


@pytest.mark.parametrize(
    "bad", ["{x}", "a b", "a\nb", "*", "a?", "[x]", "x" * 201, "\uff4d-1", "../m-1", "", "-m", "m\x00"]
)
async def test_injected_message_and_user_ids_are_refused(
    api: httpx.AsyncClient, client: aioredis.Redis, service_prefix: str, victim: str, bad: str
) -> None:
    async with nothing_stored(client, service_prefix):
        r = await api.post(f"/v1/sessions/{victim}/turns", json={"message": "hi", "message_id": bad})
        refused(r, 422)
        r = await api.post(f"/v1/sessions/{victim}/turns", json={"message": "hi", "user_id": bad})
        refused(r, 422)
        if bad.isascii() and bad.isprintable():  # headers can carry only these
            completion = {"messages": [{"role": "user", "content": "hi"}]}
            r = await api.post(
                "/v1/chat/completions", json=completion, headers={"X-Session-Id": victim, "Idempotency-Key": bad}
            )
            refused(r, 422, openai_style=True)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"message": "' + b"x" * (LIMIT + 10) + b'"}', 413),  # over the limit, with Content-Length
        (b"[" * 100_000, 413),  # 100k levels of nesting: over the limit too
        (b"[" * 50_000, 422),  # nested past the parser's recursion limit, under the byte limit
        (b'{"message": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", 422),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 422),
        (b'{"message": "\xff\xfe bad bytes"}', 422),  # not UTF-8
        (b'{"message": "\xed\xa0\x80"}', 422),  # a surrogate, UTF-8 encoded (invalid UTF-8)
        (b'{"message": "lone \\ud800 surrogate"}', 422),  # valid JSON, not valid Unicode
        (b'{"message": "\xc0\xaf"}', 422),  # an overlong encoding of /
        (b'{"message": "hi"', 422),  # truncated
        (b"\x00\x01\x02", 422),
        (b'{"message": "hi", "message": {"$ne": null}}', 422),  # the last duplicate wins, and is no string
        (b'{"message": ["hi"]}', 422),
        (b'{"message": "hi", "extra": 1}', 422),
        (b"null", 422),
    ],
)
async def test_malformed_bodies_are_refused(
    api: httpx.AsyncClient, client: aioredis.Redis, service_prefix: str, victim: str, body: bytes, status: int
) -> None:
    async with nothing_stored(client, service_prefix):
        refused(await api.post(f"/v1/sessions/{victim}/turns", content=body, headers=JSON), status)
        r = await api.post("/v1/chat/completions", content=body, headers={**JSON, "X-Session-Id": victim})
        refused(r, status, openai_style=True)


async def test_oversized_chunked_bodies_are_refused(
    api: httpx.AsyncClient, client: aioredis.Redis, service_prefix: str, victim: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        yield b'{"message": "'
        for _ in range(7):
            yield b"x" * 10_000
        yield b'"}'

    async with nothing_stored(client, service_prefix):
        r = await api.post(f"/v1/sessions/{victim}/turns", content=chunks(), headers=JSON)
        assert r.request.headers.get("transfer-encoding") == "chunked"
        refused(r, 413)


async def test_a_huge_declared_length_is_refused_before_any_body_is_sent(
    offline_service: Any, client: aioredis.Redis, service_prefix: str, victim: str
) -> None:
    url = urlsplit(offline_service.url)
    async with nothing_stored(client, service_prefix):
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        head = (
            f"POST /v1/sessions/{victim}/turns HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer key-acme\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10**15}\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)  # answered without waiting for the body
        writer.close()
        await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_a_body_that_is_not_json_is_refused(
    api: httpx.AsyncClient, client: aioredis.Redis, service_prefix: str, victim: str
) -> None:
    async with nothing_stored(client, service_prefix):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            r = await api.post(
                f"/v1/sessions/{victim}/turns", content=b"message=hi", headers={"content-type": content_type}
            )
            refused(r, 422)
        refused(await api.get(f"/v1/sessions/{victim}/messages", params={"limit": 10**30}), 422)
        refused(await api.get(f"/v1/sessions/{victim}/messages", params={"after_seq": -1}), 422)


SPOOFED = {
    "X-Tenant": "acme",
    "X-Tenant-Id": "acme",
    "X-Turnstate-Tenant": "acme",
    "Tenant": "acme",
    "X-Forwarded-User": "acme",
    "X-Original-Tenant": "acme",
}


async def test_a_spoofed_tenant_header_is_ignored(
    offline_service: Any, client: aioredis.Redis, service_prefix: str, victim: str
) -> None:
    async with nothing_stored(client, service_prefix), httpx.AsyncClient(base_url=offline_service.url) as anon:
        for headers in ({}, GLOBEX, {"X-API-Key": "nope", **ACME}, {"Authorization": "Bearer"}):
            tries = [
                await anon.get(f"/v1/sessions/{victim}/messages", headers={**SPOOFED, **headers}),
                await anon.get(f"/v1/sessions/{victim}", headers={**SPOOFED, **headers}),
                await anon.delete(f"/v1/sessions/{victim}", headers={**SPOOFED, **headers}),
            ]
            if headers == GLOBEX:  # a valid key: its own tenant, which has no such session
                assert tries[0].json()["messages"] == []
                refused(tries[1], 404)
                refused(tries[2], 404)
            else:  # no key, or a bad one (X-API-Key is read first): nothing the headers say helps
                for r in tries:
                    refused(r, 401)
        r = await anon.get(f"/v1/sessions/{victim}/messages", params={"api_key": "key-acme", "tenant": "acme"})
        refused(r, 401)


async def test_one_tenant_never_reads_writes_or_deletes_anothers_session(
    offline_service: Any, client: aioredis.Redis, service_prefix: str, victim: str
) -> None:
    globex = httpx.AsyncClient(base_url=offline_service.url, headers=GLOBEX, timeout=10)
    acme = httpx.AsyncClient(base_url=offline_service.url, headers=ACME, timeout=10)
    async with acme, globex:
        before = (await acme.get(f"/v1/sessions/{victim}/messages")).json()
        acme_keys = {
            k: v for k, v in (await stored(client, service_prefix)).items() if b"{acme:" + victim.encode() in k
        }
        # globex writes to the same session id, through both endpoints, with the same message id
        r = await globex.post(f"/v1/sessions/{victim}/turns", json={"message": "globex here", "message_id": "m-1"})
        assert r.status_code == 200 and r.json()["resumed"] is False and r.json()["seq"] == 1
        completion = {"messages": [{"role": "user", "content": "and again"}], "user": victim}
        assert (await globex.post("/v1/chat/completions", json=completion)).status_code == 200
        theirs = (await globex.get(f"/v1/sessions/{victim}/messages")).json()["messages"]
        assert [m["content"] for m in theirs][::2] == ["globex here", "and again"]
        assert (await globex.delete(f"/v1/sessions/{victim}")).status_code == 204
        # acme's session is exactly as it was
        assert (await acme.get(f"/v1/sessions/{victim}/messages")).json() == before
        after = {k: v for k, v in (await stored(client, service_prefix)).items() if b"{acme:" + victim.encode() in k}
        assert after == acme_keys and acme_keys
        assert (await globex.get(f"/v1/sessions/{victim}")).status_code == 404
