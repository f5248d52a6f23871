"""API keys map to tenants; a key sees only its tenant's sessions."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from turnstate.api.auth import Tenancy, is_loopback, read_key_file
from turnstate.config import Settings


async def test_no_key_or_an_unknown_key_is_401(offline_service: Any) -> None:
    async with httpx.AsyncClient(base_url=offline_service.url) as api:
        r = await api.post("/v1/sessions/s/turns", json={"message": "hi"})
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        r = await api.post("/v1/sessions/s/turns", json={"message": "hi"}, headers={"X-API-Key": "nope"})
        assert r.status_code == 401


async def test_the_same_session_id_is_separate_per_tenant(offline_service: Any) -> None:
    sid = f"shared-{uuid.uuid4().hex[:8]}"
    acme = httpx.AsyncClient(base_url=offline_service.url, headers={"Authorization": "Bearer key-acme"})
    globex = httpx.AsyncClient(base_url=offline_service.url, headers={"X-API-Key": "key-globex"})
    async with acme, globex:
        await acme.post(f"/v1/sessions/{sid}/turns", json={"message": "acme's secret plan"})
        # a spoofed tenant header changes nothing: the tenant comes from the key alone
        spoofed = await globex.get(f"/v1/sessions/{sid}/messages", headers={"X-Tenant": "acme", "X-Tenant-Id": "acme"})
        assert spoofed.json()["messages"] == []
        assert (await globex.get(f"/v1/sessions/{sid}")).status_code == 404
        assert (await globex.delete(f"/v1/sessions/{sid}")).status_code == 404
        assert len((await acme.get(f"/v1/sessions/{sid}/messages")).json()["messages"]) == 2


def test_local_mode_is_the_default_only_on_loopback() -> None:
    assert Tenancy.from_settings(Settings(host="127.0.0.1")).local
    assert Tenancy.from_settings(Settings(host="::1")).local
    assert not Tenancy.from_settings(Settings(host="0.0.0.0")).local
    assert not Tenancy.from_settings(Settings(host="127.0.0.1", auth="keys")).local
    assert Tenancy.from_settings(Settings(host="0.0.0.0", auth="local")).local
    assert is_loopback("localhost") and not is_loopback("example.com")


def test_keys_come_from_a_file_and_the_environment(tmp_path: Any) -> None:
    path = tmp_path / "keys"
    path.write_text("# tenant key\nacme k1\n\nglobex k2  # rotated monthly\n")
    assert read_key_file(path) == {"k1": "acme", "k2": "globex"}
    path.write_text("acme\n")
    with pytest.raises(ValueError, match="expected '<tenant> <key>'"):
        read_key_file(path)
    path.write_text("{bad} k3\n")
    with pytest.raises(ValueError, match="invalid tenant id"):
        read_key_file(path)


def test_bad_key_json_is_refused_without_quoting_keys() -> None:
    with pytest.raises(ValueError, match="not valid JSON") as excinfo:
        Tenancy.from_settings(Settings(api_keys='{"sk-live-123": '))  # type: ignore[arg-type]
    assert "sk-live-123" not in str(excinfo.value)
