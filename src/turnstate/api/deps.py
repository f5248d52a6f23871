"""What every route needs: the service's shared objects and the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from turnstate.api.auth import Tenancy
from turnstate.api.metrics import Metrics
from turnstate.api.ratelimit import RateLimiter
from turnstate.chat import Chat
from turnstate.config import Settings
from turnstate.worker import Memory


@dataclass
class Service:
    """One per app: created at startup, closed at shutdown."""

    settings: Settings
    chat: Chat
    tenancy: Tenancy
    metrics: Metrics
    memory: Memory | None = None  # long-term memory, unless turned off
    limiter: RateLimiter | None = None  # requests per tenant, unless turned off


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


# Declared so the OpenAPI document (and /docs) shows how to send a key; Tenancy reads the headers.
BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="or the API key in X-API-Key")


async def tenant(
    request: Request,
    svc: Annotated[Service, Depends(service)],
    _bearer: Annotated[object, Security(BEARER)] = None,
    _key: Annotated[object, Security(API_KEY)] = None,
) -> str:
    """The caller's tenant, from its API key; each request is counted against the tenant's rate limit."""
    found = svc.tenancy.tenant_for(request)
    if svc.limiter is not None:
        await svc.limiter.hit(found)
    return found


ServiceDep = Annotated[Service, Depends(service)]
TenantDep = Annotated[str, Depends(tenant)]
