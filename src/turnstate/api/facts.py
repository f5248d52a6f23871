"""/v1/users/{user_id}/facts: what long-term memory holds about a user, searchable and deletable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from turnstate.api.deps import ServiceDep, TenantDep
from turnstate.api.problems import problem, problem_responses
from turnstate.api.schemas import SessionQuery, UserId
from turnstate.keys import validate_id
from turnstate.memory.facts import Fact
from turnstate.worker import Memory

router = APIRouter(prefix="/v1/users", tags=["memory"], responses=problem_responses(401, 404, 422, 429, 503))


class FactOut(BaseModel):
    id: int
    key: str
    text: str
    session_id: str | None
    first_seq: int | None
    last_seq: int | None
    created_at: datetime
    superseded_at: datetime | None
    superseded_by: int | None
    score: float | None = None

    @classmethod
    def of(cls, fact: Fact, score: float | None = None) -> FactOut:
        return cls(
            id=fact.id, key=fact.key, text=fact.text, session_id=fact.session_id, first_seq=fact.first_seq,
            last_seq=fact.last_seq, created_at=fact.created_at, superseded_at=fact.superseded_at,
            superseded_by=fact.superseded_by, score=score,
        )  # fmt: skip


class FactsOut(BaseModel):
    user_id: str
    facts: list[FactOut]


def memory_of(svc: ServiceDep) -> Memory | Response:
    if svc.memory is None:
        return problem(404, "Memory is off", "long-term memory is turned off (TURNSTATE_MEMORY=false)")
    return svc.memory


@router.get("/{user_id}/facts", response_model=FactsOut, summary="The user's facts (current ones by default)")
async def list_facts(
    user_id: UserId,
    svc: ServiceDep,
    tenant: TenantDep,
    session_id: SessionQuery = None,
    include_superseded: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FactsOut | Response:
    memory = memory_of(svc)
    if isinstance(memory, Response):
        return memory
    found = await memory.facts.list_facts(
        tenant, user_id=validate_id(user_id, "user id"), session_id=session_id,
        include_superseded=include_superseded, limit=limit,
    )  # fmt: skip
    return FactsOut(user_id=user_id, facts=[FactOut.of(f) for f in found])


@router.get("/{user_id}/facts/search", response_model=FactsOut, summary="The user's facts closest to a text")
async def search_facts(
    user_id: UserId,
    svc: ServiceDep,
    tenant: TenantDep,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> FactsOut | Response:
    memory = memory_of(svc)
    if isinstance(memory, Response):
        return memory
    query = (await memory.embedder.embed_queries([q]))[0]
    scored = await memory.facts.recall(tenant, validate_id(user_id, "user id"), query, k)
    return FactsOut(user_id=user_id, facts=[FactOut.of(s.fact, s.score) for s in scored])


@router.delete("/{user_id}/facts/{fact_id}", status_code=204, summary="Forget one fact")
async def delete_fact(user_id: UserId, fact_id: int, svc: ServiceDep, tenant: TenantDep) -> Response:
    memory = memory_of(svc)
    if isinstance(memory, Response):
        return memory
    if not await memory.facts.delete_fact(tenant, fact_id, user_id=validate_id(user_id, "user id")):
        return problem(404, "Not found", f"user {user_id!r} has no fact {fact_id}")
    return Response(status_code=204)


@router.delete("/{user_id}/facts", response_model=None, summary="Forget everything about a user")
async def delete_user_facts(user_id: UserId, svc: ServiceDep, tenant: TenantDep) -> dict[str, int] | Response:
    memory = memory_of(svc)
    if isinstance(memory, Response):
        return memory
    return {"deleted": await memory.facts.delete_user(tenant, validate_id(user_id, "user id"))}
