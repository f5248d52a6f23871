"""API keys map to tenants; a key sees only its tenant's sessions."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx
import pytest

from tests.apps import serving
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


def test_local_mode_only_without_keys_and_on_a_loopback_bind_decided_from_configuration() -> None:
    # `turnstate serve` passes the address it binds; local mode only on loopback
    assert Tenancy.from_settings(Settings(), bind="127.0.0.1").local
    assert Tenancy.from_settings(Settings(), bind="::1").local
    assert not Tenancy.from_settings(Settings(), bind="0.0.0.0").local
    assert not Tenancy.from_settings(Settings(auth="keys"), bind="127.0.0.1").local
    assert Tenancy.from_settings(Settings(auth="local"), bind="0.0.0.0").local
    # create_app under another ASGI server: its bind is unknown, TURNSTATE_HOST is not guessed from
    assert not Tenancy.from_settings(Settings(host="127.0.0.1")).local
    assert "none is configured" in Tenancy.from_settings(Settings()).mode
    assert Tenancy.from_settings(Settings(auth="local")).local
    assert is_loopback("localhost") and not is_loopback("example.com")


def test_keys_configured_means_keys_required_whatever_the_bind_or_auth_setting() -> None:
    keys = json.dumps({"k1": "default"})
    for auth in ("auto", "local", "keys"):
        tenancy = Tenancy.from_settings(Settings(auth=auth, api_keys=keys), bind="127.0.0.1")  # type: ignore[arg-type]
        assert not tenancy.local and "API keys required (1 configured)" in tenancy.mode


async def test_a_keyed_tenant_named_default_is_not_open_to_keyless_requests(make_settings: Any, redis_url: str) -> None:
    settings = make_settings(
        redis_url=redis_url, memory=False, rate_limit=None, auth="local", api_keys=json.dumps({"k-default": "default"})
    )
    sid = f"s-{uuid.uuid4().hex[:8]}"
    async with serving(settings) as api:
        r = await api.post(f"/v1/sessions/{sid}/turns", json={"message": "the default tenant's secret"})
        assert r.status_code == 401
        assert (await api.get(f"/v1/sessions/{sid}/messages", headers={"X-API-Key": "other"})).status_code == 401
        assert (
            await api.post(f"/v1/sessions/{sid}/turns", json={"message": "hi"}, headers={"X-API-Key": "k-default"})
        ).status_code == 200


async def test_create_app_without_keys_or_explicit_local_refuses_keyless_use(
    make_settings: Any, redis_url: str, caplog: Any
) -> None:
    settings = make_settings(redis_url=redis_url, memory=False, rate_limit=None, auth="auto", host="127.0.0.1")
    with caplog.at_level(logging.INFO, logger="turnstate.api"):
        async with serving(settings) as api:
            assert (await api.post("/v1/sessions/s/turns", json={"message": "hi"})).status_code == 401
    assert any("auth: API keys required, but none is configured" in r.getMessage() for r in caplog.records)


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
