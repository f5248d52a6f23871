"""API keys map to tenants: a key sees only its tenant's sessions, whatever session id it names.

Keys come from `TURNSTATE_API_KEYS` (a JSON object, key -> tenant) and/or a file named by
`TURNSTATE_API_KEYS_FILE` (one `<tenant> <key>` pair per line, `#` comments). A request carries its
key as `Authorization: Bearer <key>` (what OpenAI clients send) or `X-API-Key`. Without a key the
answer is 401, except in local mode, where it gets the default tenant. The rule (decided from
configuration, never guessed): keys configured means keys required, whatever the bind and whatever
`TURNSTATE_AUTH` says; with no key configured, local mode runs when `TURNSTATE_AUTH=local`, or with
`auto` when `turnstate serve` itself binds a loopback address. `create_app()` under another ASGI
server cannot know its bind, so `auto` there means keys required (every request 401 until keys are
configured or `TURNSTATE_AUTH=local` is set). Keys are held as SHA-256 digests only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path

from fastapi import Request

from turnstate.config import Settings
from turnstate.errors import TurnstateError
from turnstate.keys import validate_id


class Unauthorized(TurnstateError):
    """No API key, or one that maps to no tenant."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_key_file(path: Path) -> dict[str, str]:
    """`<tenant> <key>` lines -> {key: tenant}."""
    keys: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected '<tenant> <key>'")
        tenant, key = parts
        keys[key] = validate_id(tenant, "tenant id")
    return keys


def parse_keys(text: str) -> dict[str, str]:
    """`TURNSTATE_API_KEYS`: a JSON object {key: tenant}. The error never quotes the keys."""
    try:
        keys = json.loads(text)
    except ValueError:
        raise ValueError("TURNSTATE_API_KEYS is not valid JSON") from None
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(t, str) for k, t in keys.items()):
        raise ValueError('TURNSTATE_API_KEYS must be a JSON object {"<key>": "<tenant>"}')
    return keys


class Tenancy:
    """Resolves a request to its tenant."""

    def __init__(self, keys: dict[str, str], *, local: bool, default_tenant: str) -> None:
        self._tenants = {_digest(k): validate_id(t, "tenant id") for k, t in keys.items()}
        self.local = local
        self.default_tenant = default_tenant

    @classmethod
    def from_settings(cls, settings: Settings, *, bind: str | None = None) -> Tenancy:
        """`bind`: the address the server binds, when the caller binds it (`turnstate serve`)."""
        keys = parse_keys(settings.api_keys.get_secret_value()) if settings.api_keys else {}
        if settings.api_keys_file is not None:
            keys.update(read_key_file(settings.api_keys_file))
        if keys:
            local = False  # keys configured means keys required
        else:
            local = settings.auth == "local" or (settings.auth == "auto" and bind is not None and is_loopback(bind))
        return cls(keys, local=local, default_tenant=settings.tenant)

    @property
    def mode(self) -> str:
        """The start-up line's words for the mode that runs."""
        if self.local:
            return f"auth: local mode (no API key needed; every request is tenant {self.default_tenant!r})"
        if self._tenants:
            return f"auth: API keys required ({len(self._tenants)} configured)"
        return (
            "auth: API keys required, but none is configured, so every request is refused (401): set "
            "TURNSTATE_API_KEYS or TURNSTATE_API_KEYS_FILE, or TURNSTATE_AUTH=local for keyless local use"
        )

    def tenant_for(self, request: Request) -> str:
        key = request.headers.get("x-api-key")
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if key is None and scheme.lower() == "bearer" and bearer.strip():
            key = bearer.strip()
        if key is None:
            if self.local:
                return self.default_tenant
            raise Unauthorized("an API key is required (Authorization: Bearer <key>, or X-API-Key)")
        tenant = self._tenants.get(_digest(key))
        if tenant is None:
            if self.local:
                return self.default_tenant  # local mode (no key configured): any key is fine
            raise Unauthorized("unknown API key")
        return tenant
