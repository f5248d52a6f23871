"""The sessions API on a real service process, a real port and a real Valkey."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

ACME = {"Authorization": "Bearer key-acme"}


@pytest.fixture
async def api(offline_service: Any) -> Any:
    async with httpx.AsyncClient(base_url=offline_service.url, headers=ACME, timeout=10) as client:
        yield client


@pytest.fixture
def sid() -> str:
    return f"api-{uuid.uuid4().hex[:10]}"


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """`event:`/`data:` blocks -> [(event, decoded data)]."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


async def test_a_turn_returns_the_stored_reply(api: httpx.AsyncClient, sid: str) -> None:
    r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "Hello there!", "message_id": "m-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["seq"], body["message_id"], body["resumed"]) == (1, "m-1", False)
    assert body["reply"]["seq"] == 2 and body["reply"]["reply_to"] == 1
    assert "offline model" in body["reply"]["content"] and "Hello there!" in body["reply"]["content"]
    assert body["context"] == {"messages": 1, "summary": False, "facts": []}
    second = (await api.post(f"/v1/sessions/{sid}/turns", json={"message": "And again"})).json()
    assert second["context"]["messages"] == 3
    assert "3 messages" in second["reply"]["content"]


async def test_a_retried_message_id_returns_the_same_reply_without_appending(api: httpx.AsyncClient, sid: str) -> None:
    first = (await api.post(f"/v1/sessions/{sid}/turns", json={"message": "Hi", "message_id": "m-1"})).json()
    again = (await api.post(f"/v1/sessions/{sid}/turns", json={"message": "Hi", "message_id": "m-1"})).json()
    assert again["resumed"] is True
    assert again["reply"] == first["reply"]
    assert len((await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"]) == 2


async def test_streaming_sends_turn_deltas_and_done(api: httpx.AsyncClient, sid: str) -> None:
    r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "Stream please", "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert names[0] == "turn" and names[-1] == "done" and names.count("delta") > 1
    text = "".join(d["text"] for e, d in events if e == "delta")
    done = events[-1][1]
    assert text == done["reply"]["content"]
    stored = (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert [m["content"] for m in stored] == ["Stream please", text]


async def test_accept_header_selects_streaming(api: httpx.AsyncClient, sid: str) -> None:
    r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "hi"}, headers={"Accept": "text/event-stream"})
    assert [e for e, _ in parse_sse(r.text)][-1] == "done"


async def test_messages_are_paged_oldest_first(api: httpx.AsyncClient, sid: str) -> None:
    for n in range(3):
        await api.post(f"/v1/sessions/{sid}/turns", json={"message": f"q{n}"})
    page = (await api.get(f"/v1/sessions/{sid}/messages", params={"limit": 4})).json()
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3, 4] and page["next_after_seq"] == 4
    rest = (await api.get(f"/v1/sessions/{sid}/messages", params={"limit": 4, "after_seq": 4})).json()
    assert [m["seq"] for m in rest["messages"]] == [5, 6] and rest["next_after_seq"] is None


async def test_session_facts_and_delete(api: httpx.AsyncClient, sid: str) -> None:
    assert (await api.get(f"/v1/sessions/{sid}")).status_code == 404
    await api.post(f"/v1/sessions/{sid}/turns", json={"message": "hi"})
    info = (await api.get(f"/v1/sessions/{sid}")).json()
    assert (info["last_seq"], info["hot"], info["archived"], info["busy"]) == (2, 2, 0, False)
    assert 0 < info["ttl_seconds"] <= 86_400
    assert (await api.delete(f"/v1/sessions/{sid}")).status_code == 204
    assert (await api.delete(f"/v1/sessions/{sid}")).status_code == 404
    assert (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"] == []


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/sessions/bad%7Bid/turns", {"message": "x"}, 422, "invalid session id"),
        ("/v1/sessions/a%3Ab/turns", {"message": "x"}, 422, "invalid session id"),
        ("/v1/sessions/ok/turns", {"message": ""}, 422, "empty"),
        ("/v1/sessions/ok/turns", {"message": "x", "message_id": "{x}"}, 422, "invalid message id"),
        ("/v1/sessions/ok/turns", {"message": "x", "surprise": 1}, 422, "does not match the schema"),
        ("/v1/sessions/ok/turns", {"text": "x"}, 422, "does not match the schema"),
    ],
)
async def test_bad_input_gets_a_problem_and_stores_nothing(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, needle: str
) -> None:
    r = await api.post(path, json=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in json.dumps(r.json())
    assert (await api.get("/v1/sessions/ok")).status_code == 404


async def test_malformed_and_oversized_bodies_are_refused(api: httpx.AsyncClient, sid: str) -> None:
    r = await api.post(f"/v1/sessions/{sid}/turns", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["title"] == "Invalid request"
    r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "x" * 70_000})
    assert r.status_code == 413 and r.json()["status"] == 413

    async def chunks() -> Any:
        for _ in range(80):
            yield b" " * 1024  # no Content-Length: the limit holds while the body streams in

    r = await api.post(f"/v1/sessions/{sid}/turns", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    deep = "[" * 50_000 + "]" * 50_000
    r = await api.post(f"/v1/sessions/{sid}/turns", content=deep.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert (await api.get(f"/v1/sessions/{sid}")).status_code == 404


async def test_operations_endpoints(offline_service: Any, api: httpx.AsyncClient, sid: str) -> None:
    async with httpx.AsyncClient(base_url=offline_service.url) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        ready = (await anonymous.get("/readyz")).json()
        assert ready["status"] == "ready" and "begin_turn" in ready["scripts"] and ready["model"] == "offline"
        await api.post(f"/v1/sessions/{sid}/turns", json={"message": "count me"})
        metrics = (await anonymous.get("/metrics")).text
        assert "turnstate_turn_state_seconds_count" in metrics
        assert "turnstate_turn_model_seconds_count" in metrics
        assert "turnstate_redis_round_trips_total" in metrics
        assert "turnstate_leases_held 0.0" in metrics
        spec = (await anonymous.get("/openapi.json")).json()
        assert {"/v1/sessions/{session_id}/turns", "/v1/chat/completions"} <= set(spec["paths"])
