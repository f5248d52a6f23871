"""The service while its Redis crashes: clear 503s (never a stack trace or a hang), and a retried turn answered once.

A turn is in flight (its model call stalled) when the server is SIGKILLed; the reply cannot be
stored, so the client gets a 503 problem, and so do other requests until the server is back. It
restarts with its append-only file (fsynced on every write), and the same message_id then
resumes the turn at once (the lease it held is its own) and stores exactly one reply.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.faults import CrashableValkey
from tests.helpers import wait_until
from tests.openai_standin import DEFAULT_REPLY
from tests.service import ServiceProcess

ACME = {"Authorization": "Bearer key-acme"}


async def test_a_crash_mid_turn_answers_503_and_the_retried_turn_is_stored_once(tmp_path: Path, standin: Any) -> None:
    server = CrashableValkey(tmp_path / "valkey", persistent=True, extra_args=("--appendfsync", "always"))
    service = ServiceProcess(
        server.url,
        f"sf{uuid.uuid4().hex[:8]}",
        tmp_path,
        OPENAI_BASE_URL=standin.base_url,
        OPENAI_API_KEY="sk-test",
        TURNSTATE_MODEL_MAX_RETRIES="0",
        TURNSTATE_LEASE_SECONDS="60",
        TURNSTATE_QUEUE_WAIT_SECONDS="0.5",  # a retry made to wait for the lease would get 503, not hang
        TURNSTATE_REDIS_RETRIES="1",  # the default rides out about 2 s; here the server stays down longer
    )
    turn = {"message": "hello", "message_id": "m-1"}
    try:
        async with httpx.AsyncClient(base_url=service.url, headers=ACME, timeout=30) as api:
            standin.stall(60)
            in_flight = asyncio.create_task(api.post("/v1/sessions/s/turns", json=turn))

            async def model_called() -> bool:
                return len(standin.requests) > 0

            await wait_until(model_called, within=30)  # begun: the user message is stored, the lease held
            server.crash()
            standin.reset()  # the model answers now; the reply has nowhere to go
            failed = await in_flight
            other = await api.post("/v1/sessions/t/turns", json={"message": "meanwhile"})
            ready, alive = await api.get("/readyz"), await api.get("/healthz")
            await asyncio.to_thread(server.restart)
            retried = await api.post("/v1/sessions/s/turns", json=turn)
            stored = (await api.get("/v1/sessions/s/messages")).json()["messages"]
    finally:
        log = service.stop()
        server.stop()
    for r in (failed, other):
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["title"] == "State store unavailable" and "retry-after" in r.headers
    assert (ready.status_code, alive.status_code) == (503, 200)
    assert retried.status_code == 200 and retried.json()["resumed"] is True
    assert [(m["id"], m["content"]) for m in stored] == [("m-1", "hello"), ("m-1:reply", DEFAULT_REPLY)]
    assert "Traceback" not in log
    print(
        "\nFAULT service, Redis crash mid-turn (AOF always): turns=2 acknowledged=2 (after retry) lost=0 "
        "duplicated=0 errors=503 x2 (in flight, meanwhile), readyz 503"
    )
