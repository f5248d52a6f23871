"""/v1/sessions: turns (JSON or server-sent events), messages, session facts, delete."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from turnstate.api.deps import ServiceDep, TenantDep
from turnstate.api.problems import describe, error_kind, problem, problem_responses
from turnstate.api.schemas import (
    MessageOut,
    MessagesPage,
    SessionId,
    SessionOut,
    TurnContext,
    TurnRequest,
    TurnResponse,
)
from turnstate.chat import ChatResult, TurnStream

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=problem_responses(401, 422, 429, 503))


def turn_response(session_id: str, result: ChatResult) -> TurnResponse:
    turn = result.turn
    return TurnResponse(
        session_id=session_id,
        message_id=turn.message_id,
        seq=turn.seq,
        resumed=turn.resumed,
        reply=MessageOut.of(result.reply),
        context=TurnContext(
            messages=len(turn.messages), summary=turn.summary is not None, facts=[f.text for f in result.facts]
        ),
        state_ms=round(result.state_seconds * 1000, 3),
        model_ms=round(result.model_seconds * 1000, 3),
    )


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def turn_events(svc: ServiceDep, session_id: str, stream: TurnStream) -> AsyncIterator[str]:
    """`turn` (what was stored), `delta`s, then `done` (the stored reply) or `error` (a problem)."""
    turn = stream.turn
    yield sse(
        "turn", {"session_id": session_id, "message_id": turn.message_id, "seq": turn.seq, "resumed": turn.resumed}
    )
    try:
        async for delta in stream:
            yield sse("delta", {"text": delta})
        result = await stream.result()
    except Exception as exc:
        svc.metrics.errors.labels(error_kind(exc)).inc()
        yield sse("error", describe(exc).body())
        return
    svc.metrics.observe(result, "sessions")
    yield sse("done", turn_response(session_id, result).model_dump())


@router.post(
    "/{session_id}/turns",
    response_model=TurnResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(409, 413, 502, 504)},
    summary="Send a user message and get the reply",
)
async def post_turn(
    session_id: SessionId,
    body: TurnRequest,
    svc: ServiceDep,
    tenant: TenantDep,
    accept: Annotated[str, Header()] = "application/json",
) -> Response | TurnResponse:
    """The reply as JSON, or with `"stream": true` (or `Accept: text/event-stream`) as events.

    A streaming client that disconnects does not cancel the turn: the reply is completed and
    stored, and a retry with the same `message_id` returns it without a second model call.
    """
    chat = svc.chat
    if body.stream or "text/event-stream" in accept:
        stream = await chat.stream(
            session_id, body.message, message_id=body.message_id, tenant=tenant, user_id=body.user_id
        )
        return StreamingResponse(turn_events(svc, session_id, stream), media_type="text/event-stream")
    result = await chat.turn(session_id, body.message, message_id=body.message_id, tenant=tenant, user_id=body.user_id)
    svc.metrics.observe(result, "sessions")
    return turn_response(session_id, result)


@router.get("/{session_id}/messages", response_model=MessagesPage, summary="Stored messages, oldest first")
async def get_messages(
    session_id: SessionId,
    svc: ServiceDep,
    tenant: TenantDep,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MessagesPage:
    held = [m for m in await svc.chat.store.history(session_id, tenant=tenant) if m.seq > after_seq]
    page = held[:limit]
    more = len(held) > limit
    return MessagesPage(
        session_id=session_id, messages=[MessageOut.of(m) for m in page], next_after_seq=page[-1].seq if more else None
    )


@router.get(
    "/{session_id}", response_model=SessionOut, responses=problem_responses(404), summary="Summary, counts and TTL"
)
async def get_session(session_id: SessionId, svc: ServiceDep, tenant: TenantDep) -> SessionOut | Response:
    info = await svc.chat.store.info(session_id, tenant=tenant)
    if info.ttl_seconds is None:
        return not_found(session_id)
    return SessionOut.of(info)


@router.delete(
    "/{session_id}", status_code=204, responses=problem_responses(404), summary="Delete a session and all it holds"
)
async def delete_session(session_id: SessionId, svc: ServiceDep, tenant: TenantDep) -> Response:
    if not await svc.chat.store.delete(session_id, tenant=tenant):
        return not_found(session_id)
    return Response(status_code=204)


def not_found(session_id: str) -> Response:
    return problem(404, "Not found", f"no session {session_id!r}")
