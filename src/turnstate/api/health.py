"""/healthz (the process is up), /readyz (the state store answers, scripts loaded), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from turnstate import scripts
from turnstate.api.deps import ServiceDep
from turnstate.api.problems import problem, problem_responses
from turnstate.connection import unavailable_as
from turnstate.errors import TurnstateError

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses=problem_responses(503),
    summary="The state store answers and has the turn scripts loaded",
)
async def readyz(svc: ServiceDep) -> Response | dict[str, object]:
    store = svc.chat.store
    try:
        async with unavailable_as(store.address):
            loaded = await scripts.ensure_loaded(store.client)
    except TurnstateError as exc:
        return problem(503, "Not ready", str(exc))
    return {"status": "ready", "store": store.address, "scripts": loaded, "model": svc.chat.model.name}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(svc: ServiceDep) -> Response:
    return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4")
