"""Long-term memory through the service: facts learned in one session, recalled in the next; listed,
searched and deleted per user; never across tenants."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.helpers import wait_until

ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"Authorization": "Bearer key-globex"}
LINES = ["My name is Grace Hopper.", "My favourite language is COBOL.", "I live in Arlington.", "ok", "ok", "ok"]


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


async def teach(api: httpx.AsyncClient, user: str) -> None:
    session = f"learn-{user}"
    for line in LINES:
        r = await api.post(f"/v1/sessions/{session}/turns", json={"message": line, "user_id": user})
        assert r.status_code == 200, r.text

    async def learned() -> bool:
        facts = (await api.get(f"/v1/users/{user}/facts")).json()["facts"]
        return any(f["key"] == "user.favourite_language" for f in facts)

    await wait_until(learned, within=30)


async def test_facts_are_recalled_in_a_later_session_of_the_same_user(memory_service: Any, user: str) -> None:
    async with httpx.AsyncClient(base_url=memory_service.url, headers=ACME, timeout=30) as api:
        await teach(api, user)
        later = await api.post(
            f"/v1/sessions/next-{user}/turns", json={"message": "Which language do I like?", "user_id": user}
        )
        assert "The user's favourite language is COBOL." in later.json()["context"]["facts"]
        assert "It recalled" in later.json()["reply"]["content"]  # the offline model shows what it was given
        found = (await api.get(f"/v1/users/{user}/facts/search", params={"q": "where do I live?", "k": 1})).json()
        assert found["facts"][0]["text"] == "The user lives in Arlington."
        assert found["facts"][0]["score"] > 0
        metrics = (await api.get("/metrics")).text
        assert "turnstate_recalls_done_total" in metrics and "turnstate_recalls_late_total" in metrics


async def test_facts_are_per_tenant_and_can_be_deleted(memory_service: Any, user: str) -> None:
    async with httpx.AsyncClient(base_url=memory_service.url, headers=ACME, timeout=30) as api:
        await teach(api, user)
        async with httpx.AsyncClient(base_url=memory_service.url, headers=GLOBEX) as other:
            assert (await other.get(f"/v1/users/{user}/facts")).json()["facts"] == []
            theirs = await other.post(
                f"/v1/sessions/next-{user}/turns", json={"message": "Which language do I like?", "user_id": user}
            )
            assert theirs.json()["context"]["facts"] == []
            fact_id = (await api.get(f"/v1/users/{user}/facts")).json()["facts"][0]["id"]
            assert (await other.delete(f"/v1/users/{user}/facts/{fact_id}")).status_code == 404
        assert (await api.delete(f"/v1/users/{user}/facts/{fact_id}")).status_code == 204
        assert (await api.delete(f"/v1/users/{user}/facts/{fact_id}")).status_code == 404
        remaining = len((await api.get(f"/v1/users/{user}/facts")).json()["facts"])
        assert (await api.delete(f"/v1/users/{user}/facts")).json() == {"deleted": remaining}
        assert (await api.get(f"/v1/users/{user}/facts")).json()["facts"] == []


async def test_memory_endpoints_refuse_bad_ids_and_say_when_memory_is_off(
    memory_service: Any, offline_service: Any
) -> None:
    async with httpx.AsyncClient(base_url=memory_service.url, headers=ACME) as api:
        assert (await api.get("/v1/users/bad%7Bid/facts")).status_code == 422
        r = await api.post("/v1/sessions/s1/turns", json={"message": "hi", "user_id": "no:colons"})
        assert r.status_code == 422 and "invalid user id" in r.json()["detail"]
    async with httpx.AsyncClient(base_url=offline_service.url, headers=ACME) as api:
        r = await api.get("/v1/users/anyone/facts")
        assert r.status_code == 404 and r.json()["title"] == "Memory is off"
