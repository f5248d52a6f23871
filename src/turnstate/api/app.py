"""The HTTP service: `create_app()` builds it; the store and model open at startup, close at shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from turnstate import __version__
from turnstate.api import console, facts, health, openai_compat, problems, sessions
from turnstate.api.auth import Tenancy
from turnstate.api.deps import Service
from turnstate.api.limits import BodyLimit
from turnstate.api.metrics import Metrics
from turnstate.api.ratelimit import RateLimiter
from turnstate.config import Settings
from turnstate.runtime import open_runtime

log = logging.getLogger("turnstate.api")


def create_app(settings: Settings | None = None, *, bind: str | None = None) -> FastAPI:
    """The service as an ASGI app (for uvicorn, or any ASGI server: `turnstate.api:create_app`).

    `bind`: the address the caller binds (`turnstate serve` passes it); with `TURNSTATE_AUTH=auto`
    and no key configured, local mode runs only when it is a loopback address (see api/auth.py).
    """
    settings = settings or Settings()
    tenancy = Tenancy.from_settings(settings, bind=bind)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await open_runtime(settings, stack)
            chat, memory = runtime.chat, runtime.memory
            metrics = Metrics(chat)
            limiter = RateLimiter.for_store(chat.store, settings.rate_limit)
            if limiter is not None:
                stack.push_async_callback(limiter.aclose)
            app.state.service = Service(settings, chat, tenancy, metrics, memory, limiter)
            log.info("turnstate %s", tenancy.mode)
            mode = "local mode (no API key needed)" if tenancy.local else "API keys required"
            facts = memory.facts.address if memory else "off"
            limit = settings.rate_limit if limiter else "off"
            log.info(
                "turnstate serving: store %s, model %s, memory %s, %s, rate limit %s",
                chat.store.address, chat.model.name, facts, mode, limit,
            )  # fmt: skip
            yield

    app = FastAPI(
        title="turnstate",
        version=__version__,
        summary="LLM conversation state in Redis: two round trips per turn, correct under concurrency.",
        lifespan=lifespan,
    )
    app.include_router(sessions.router)
    app.include_router(openai_compat.router)
    app.include_router(facts.router)
    app.include_router(health.router)
    app.include_router(console.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    problems.install(app, lambda: app.state.service.metrics)
    return app
