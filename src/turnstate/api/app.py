"""The HTTP service: `create_app()` builds it; the store and model open at startup, close at shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from turnstate import __version__
from turnstate.api import facts, health, openai_compat, problems, sessions
from turnstate.api.auth import Tenancy
from turnstate.api.deps import Service
from turnstate.api.limits import BodyLimit
from turnstate.api.metrics import Metrics
from turnstate.chat import Chat
from turnstate.config import Settings
from turnstate.llm import model_from_settings
from turnstate.memory.recall import Recall
from turnstate.store import open_store
from turnstate.worker import SummaryScheduler, memory_docket, open_memory, serving_jobs

log = logging.getLogger("turnstate.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service as an ASGI app (for uvicorn, or any ASGI server: `turnstate.api:create_app`)."""
    settings = settings or Settings()
    tenancy = Tenancy.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = await open_store(settings=settings)
            stack.push_async_callback(store.aclose)
            model = model_from_settings(settings)
            stack.push_async_callback(model.aclose)
            memory, recall, scheduler = None, None, None
            if settings.memory:
                memory = await stack.enter_async_context(open_memory(settings, store, model))
                docket = await stack.enter_async_context(memory_docket(settings, store))
                recall = Recall(
                    memory.facts, memory.embedder, store.tokens, k=settings.recall_k,
                    budget_seconds=settings.recall_budget_seconds, max_tokens=settings.recall_tokens,
                )  # fmt: skip
                scheduler = SummaryScheduler(docket)
                if settings.worker_in_service:
                    await stack.enter_async_context(serving_jobs(settings, docket, memory))
            chat = Chat(store, model, system_prompt=settings.system_prompt, recall=recall, schedule_summary=scheduler)
            stack.push_async_callback(chat.drain)
            metrics = Metrics(round_trips=lambda: store.round_trips, turns_in_flight=lambda: chat.turns_in_flight)
            app.state.service = Service(settings, chat, tenancy, metrics, memory)
            mode = "local mode (no API key needed)" if tenancy.local else "API keys required"
            facts = memory.facts.address if memory else "off"
            log.info("turnstate serving: store %s, model %s, memory %s, %s", store.address, model.name, facts, mode)
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
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    problems.install(app, lambda: app.state.service.metrics)
    return app
