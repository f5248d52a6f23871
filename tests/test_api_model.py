"""The service in front of a (stand-in) remote model: failures, retries, disconnects, busy sessions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.helpers import wait_until
from tests.openai_standin import DEFAULT_REPLY

ACME = {"Authorization": "Bearer key-acme"}


@pytest.fixture
def sid() -> str:
    return f"model-{uuid.uuid4().hex[:10]}"


def client(service: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=service.url, headers=ACME, timeout=20)


async def messages(api: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    return (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"]  # type: ignore[no-any-return]


async def busy(api: httpx.AsyncClient, sid: str) -> bool:
    return bool((await api.get(f"/v1/sessions/{sid}")).json().get("busy"))


async def test_the_model_gets_the_window_and_its_reply_is_stored(model_service: Any, standin: Any, sid: str) -> None:
    async with client(model_service) as api:
        await api.post(f"/v1/sessions/{sid}/turns", json={"message": "first"})
        r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "second"})
    assert r.json()["reply"]["content"] == DEFAULT_REPLY
    sent = standin.requests[-1]
    assert sent.authorization == "Bearer sk-test-secret-123"
    assert [m["content"] for m in sent.messages[1:]] == ["first", DEFAULT_REPLY, "second"]
    assert sent.messages[0]["role"] == "system"


async def test_a_failed_model_call_leaves_the_session_consistent_and_a_retry_resumes(
    model_service: Any, standin: Any, sid: str
) -> None:
    standin.fail(500, times=5)
    async with client(model_service) as api:
        r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "hello", "message_id": "m-1"})
        assert r.status_code == 502
        assert r.json()["kind"] == "unavailable"
        assert "sk-test-secret-123" not in r.text
        assert [m["id"] for m in await messages(api, sid)] == ["m-1"]  # kept, unanswered
        assert (await api.get(f"/v1/sessions/{sid}")).json()["busy"] is False  # lease released
        standin.reset()
        retry = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "hello", "message_id": "m-1"})
        assert retry.status_code == 200
        assert (retry.json()["seq"], retry.json()["resumed"]) == (1, True)
        assert [m["id"] for m in await messages(api, sid)] == ["m-1", "m-1:reply"]


@pytest.mark.parametrize(("status", "expected"), [(429, 429), (401, 502)])
async def test_model_errors_map_to_clear_statuses(
    model_service: Any, standin: Any, sid: str, status: int, expected: int
) -> None:
    standin.fail(status, times=5, retry_after="7")
    async with client(model_service) as api:
        r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "hello"})
    assert r.status_code == expected
    assert r.headers["content-type"] == "application/problem+json"
    if status == 429:
        assert r.headers["retry-after"] == "7"


async def test_a_client_that_disconnects_mid_stream_still_gets_its_reply_stored(
    model_service: Any, standin: Any, sid: str
) -> None:
    standin.stall(0.5, after_chunks=1)
    async with client(model_service) as api:
        body = {"message": "long answer please", "message_id": "m-1", "stream": True}
        async with api.stream("POST", f"/v1/sessions/{sid}/turns", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("event: delta"):
                    break  # the client goes away after the first delta

        async def reply_stored() -> bool:
            return len(await messages(api, sid)) == 2

        await wait_until(reply_stored)
        assert (await messages(api, sid))[1]["content"] == DEFAULT_REPLY
        retry = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "long answer please", "message_id": "m-1"})
    assert retry.json()["resumed"] is True and retry.json()["reply"]["content"] == DEFAULT_REPLY
    assert len(standin.requests) == 1  # the retry was answered from the store, not the model


async def test_a_stream_whose_model_fails_ends_with_an_error_event(model_service: Any, standin: Any, sid: str) -> None:
    standin.cut_stream(after_chunks=1)
    async with client(model_service) as api:
        r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "hi", "stream": True})
        assert "event: error" in r.text and '"kind": "unavailable"' in r.text
        assert [m["role"] for m in await messages(api, sid)] == ["user"]


async def test_reject_policy_answers_409_while_a_turn_runs(reject_service: Any, standin: Any, sid: str) -> None:
    standin.stall(1.0)
    async with client(reject_service) as api:
        slow = asyncio.create_task(api.post(f"/v1/sessions/{sid}/turns", json={"message": "slow"}))
        await wait_until(lambda: busy(api, sid))
        r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "impatient"})
        assert r.status_code == 409
        assert int(r.headers["retry-after"]) >= 1
        assert (await slow).status_code == 200
        assert [m["content"] for m in await messages(api, sid)] == ["slow", DEFAULT_REPLY]


async def test_a_queued_turn_past_its_wait_limit_gets_503(model_service: Any, standin: Any, sid: str) -> None:
    standin.stall(1.5)
    async with client(model_service) as api:
        slow = asyncio.create_task(api.post(f"/v1/sessions/{sid}/turns", json={"message": "slow"}))
        await wait_until(lambda: busy(api, sid))
        r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "waits"})
        assert r.status_code == 503 and "retry-after" in r.headers
        assert (await slow).status_code == 200


async def test_a_turn_whose_session_is_deleted_while_it_generates_gets_409(
    model_service: Any, standin: Any, sid: str
) -> None:
    standin.stall(1.0)
    async with client(model_service) as api:
        slow = asyncio.create_task(api.post(f"/v1/sessions/{sid}/turns", json={"message": "slow", "message_id": "m-1"}))
        await wait_until(lambda: busy(api, sid))
        assert (await api.delete(f"/v1/sessions/{sid}")).status_code == 204
        gone = await slow
        assert gone.status_code == 409 and gone.json()["title"] == "Turn gone", gone.text
        assert await messages(api, sid) == []  # the reply was not stored into the deleted session
        again = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "slow", "message_id": "m-1"})
        assert again.status_code == 200 and again.json()["seq"] == 1
