"""The service as an in-process ASGI app on the test servers, for tests that need several apps or a
setting per test (the session-scoped service processes in conftest.py serve the rest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from turnstate.api import create_app
from turnstate.config import Settings


@asynccontextmanager
async def serving(settings: Settings, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """`create_app(settings)` started (lifespan run) and a client talking to it without a socket."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as client:
            yield client
