"""The chat service on a real Redis Cluster: its smoke tests, through a real process and port."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.service import ServiceProcess, memory_env
from tests.test_api_memory import teach
from tests.test_api_sessions import ACME, parse_sse
from turnstate import scripts


@pytest.fixture(scope="module")
def cluster_service(valkey_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service with the offline model, its Redis a 3-master cluster (a `redis+cluster://` URL)."""
    service = ServiceProcess(
        valkey_cluster.url, f"csvc{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("cluster-service")
    )
    yield service
    service.stop()


@pytest.fixture
async def api(cluster_service: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster_service.url, headers=ACME, timeout=20) as client:
        yield client


async def test_turns_streams_retries_history_and_delete_on_the_cluster(api: httpx.AsyncClient) -> None:
    sid = f"c-{uuid.uuid4().hex[:8]}"
    first = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "Hello", "message_id": "m-1"})
    assert first.status_code == 200, first.text
    again = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "Hello", "message_id": "m-1"})
    assert again.json()["reply"] == first.json()["reply"]
    streamed = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "More", "stream": True})
    events = parse_sse(streamed.text)
    assert events[-1][0] == "done", events
    history = (await api.get(f"/v1/sessions/{sid}/messages")).json()
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3, 4]
    assert (await api.delete(f"/v1/sessions/{sid}")).status_code == 204
    assert (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"] == []


async def test_racing_turns_of_one_session_queue_on_the_cluster(api: httpx.AsyncClient) -> None:
    sid = f"c-{uuid.uuid4().hex[:8]}"
    answers = await asyncio.gather(
        *(api.post(f"/v1/sessions/{sid}/turns", json={"message": f"q{n}", "message_id": f"q-{n}"}) for n in range(8))
    )
    assert [r.status_code for r in answers] == [200] * 8
    messages = (await api.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert [m["seq"] for m in messages] == list(range(1, 17))
    for question, reply in zip(messages[::2], messages[1::2], strict=True):
        assert (question["role"], reply["role"], reply["reply_to"]) == ("user", "assistant", question["seq"])


async def test_readiness_loads_the_scripts_on_every_master(api: httpx.AsyncClient, valkey_cluster: Any) -> None:
    for port in valkey_cluster.ports:
        async with aioredis.Redis(port=port) as node:
            await node.script_flush()
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    for port in valkey_cluster.ports:
        async with aioredis.Redis(port=port) as node:
            assert all(await node.script_exists(*(s.sha for s in scripts.TURN_PROTOCOL))), port


async def test_long_term_memory_runs_on_the_cluster(
    valkey_cluster: Any, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The job queue (pydocket, on the same cluster) summarises and learns; recall brings it back."""
    service = ServiceProcess(
        valkey_cluster.url,
        f"cmem{uuid.uuid4().hex[:8]}",
        tmp_path_factory.mktemp("cluster-memory"),
        **memory_env(database_url),
    )
    user = f"u-{uuid.uuid4().hex[:8]}"
    try:
        async with httpx.AsyncClient(base_url=service.url, headers=ACME, timeout=30) as api:
            await teach(api, user)
            info = (await api.get(f"/v1/sessions/learn-{user}")).json()
            assert info["summary_upto"] > 0 and info["summary"], info
            later = await api.post(
                f"/v1/sessions/later-{user}/turns", json={"message": "What language do I like?", "user_id": user}
            )
            assert any("COBOL" in fact for fact in later.json()["context"]["facts"]), later.text
    finally:
        service.stop()
