"""The model failing under the service: errors, timeouts and streams cut midway, as JSON and as events.

Whatever the failure, the client gets a clear answer (problem+json 502/504, or an `error` event),
the user message stays stored and unanswered, the session's lease is released (the next turn
runs at once, though a held lease would block it for a minute), and a retry with the same
message_id stores exactly one reply. The service here gives the model 2 s, so timeouts are quick.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.openai_standin import DEFAULT_REPLY
from tests.service import ServiceProcess

ACME = {"Authorization": "Bearer key-acme"}


@pytest.fixture(scope="module")
def impatient_service(
    redis_url: str, standin_api: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The service in front of the stand-in: no SDK retries, 2 s for the model, 60 s leases, 0.5 s queue wait."""
    service = ServiceProcess(
        redis_url,
        f"mf{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("model-faults"),
        OPENAI_BASE_URL=standin_api.base_url,
        OPENAI_API_KEY="sk-test",
        TURNSTATE_MODEL_MAX_RETRIES="0",
        TURNSTATE_MODEL_TIMEOUT_SECONDS="2",  # a timeout, yet ample for a healthy answer on a busy machine
        TURNSTATE_LEASE_SECONDS="60",
        TURNSTATE_QUEUE_WAIT_SECONDS="0.5",
    )
    yield service
    service.stop()


def inject(standin: Any, fault: str) -> None:
    if fault == "error-500":
        standin.fail(500)
    elif fault == "timeout":
        standin.stall(30)  # far past the service's 2 s: the SDK gives up
    elif fault == "stalls-mid-stream":
        standin.stall(30, after_chunks=1)
    elif fault == "dropped-mid-stream":
        standin.cut_stream(after_chunks=1)


EXPECTED = {  # fault -> (status, kind) the client is told
    "error-500": (502, "unavailable"),
    "timeout": (504, "timeout"),
    "stalls-mid-stream": (504, "timeout"),
    "dropped-mid-stream": (502, "unavailable"),
}


def error_event(body: str) -> dict[str, Any]:
    """The `error` event of a server-sent event stream (after `turn` and any deltas)."""
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names[0] == "turn" and names[-1] == "error" and "done" not in names, names
    return json.loads(events[-1][1].removeprefix("data: "))  # type: ignore[no-any-return]


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", list(EXPECTED))
async def test_a_failed_model_call_is_clear_releases_the_session_and_a_retry_answers_once(
    impatient_service: ServiceProcess, standin: Any, fault: str, streaming: bool
) -> None:
    sid = f"mf-{uuid.uuid4().hex[:10]}"
    status, kind = EXPECTED[fault]
    turns = f"/v1/sessions/{sid}/turns"
    async with httpx.AsyncClient(base_url=impatient_service.url, headers=ACME, timeout=20) as api:
        inject(standin, fault)
        r = await api.post(turns, json={"message": "hello", "message_id": "m-1", "stream": streaming})
        if streaming:
            assert r.status_code == 200
            problem = error_event(r.text)
        else:
            assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
            problem = r.json()
        assert (problem["status"], problem["kind"]) == (status, kind)
        assert "sk-test" not in r.text
        stored = (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
        assert [(m["id"], m["role"]) for m in stored] == [("m-1", "user")]  # kept, unanswered
        assert (await api.get(f"/v1/sessions/{sid}")).json()["busy"] is False

        standin.reset()
        nxt = await api.post(turns, json={"message": "next", "message_id": "m-2"})
        assert nxt.status_code == 200  # a held lease would have kept it queued past 0.5 s: 503
        retry = await api.post(turns, json={"message": "hello", "message_id": "m-1", "stream": streaming})
        assert retry.status_code == 200
        again = await api.post(turns, json={"message": "hello", "message_id": "m-1"})
        stored = (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert again.json()["resumed"] is True and again.json()["reply"]["content"] == DEFAULT_REPLY
    assert [m["id"] for m in stored] == ["m-1", "m-2", "m-2:reply", "m-1:reply"]  # one reply to m-1
    assert stored[3]["reply_to"] == stored[0]["seq"]
    assert len(standin.requests) == 2  # m-2 and the retry of m-1; the last post was answered from the store


async def test_a_retry_while_the_first_attempt_still_generates_joins_it(model_service: Any, standin: Any) -> None:
    """A client that leaves a stream and retries at once gets that generation's reply: no second model call."""
    sid = f"mf-{uuid.uuid4().hex[:10]}"
    turn = {"message": "a long answer, please", "message_id": "m-1"}
    standin.stall(2, after_chunks=1)  # the first attempt generates for 2 s more (the service allows the model 5 s)
    async with httpx.AsyncClient(base_url=model_service.url, headers=ACME, timeout=20) as api:
        async with api.stream("POST", f"/v1/sessions/{sid}/turns", json={**turn, "stream": True}) as first:
            async for line in first.aiter_lines():
                if line.startswith("event: delta"):
                    break  # the client goes away mid-stream, and retries at once
        retry = await api.post(f"/v1/sessions/{sid}/turns", json=turn)
        streamed = await api.post(f"/v1/sessions/{sid}/turns", json={**turn, "stream": True})
        stored = (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert retry.status_code == 200 and retry.json()["resumed"] is True
    assert retry.json()["reply"]["content"] == DEFAULT_REPLY
    assert "event: done" in streamed.text
    assert [m["id"] for m in stored] == ["m-1", "m-1:reply"]
    assert len(standin.requests) == 1  # one generation, whichever request asked
