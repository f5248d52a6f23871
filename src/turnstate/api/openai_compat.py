"""POST /v1/chat/completions, OpenAI-compatible: an existing OpenAI client gains memory by
changing its base URL.

The session is named by the `X-Session-Id` header or the request's `user` field. Only the last
user message of `messages` is new: the service already holds the conversation, so earlier
messages the client resends are not stored again. `Idempotency-Key` (or `X-Message-Id`) names
the message, so a client's retry never appends twice. `GET /v1/models` lists the configured
model, in OpenAI's list shape, for clients that call it first.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from turnstate.api.deps import ServiceDep, TenantDep
from turnstate.api.problems import Problem, describe, error_kind, problem_responses
from turnstate.api.schemas import ChatCompletionRequest, MessageIdHeader, SessionHeader, UserHeader
from turnstate.chat import ChatResult, TurnStream
from turnstate.errors import InvalidInput

router = APIRouter(
    prefix="/v1",
    tags=["openai-compatible"],
    responses=problem_responses(400, 401, 409, 413, 422, 429, 502, 503, 504, openai_style=True),
)


def user_text(request: ChatCompletionRequest) -> str:
    """The content of the last user message (text parts joined)."""
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            return message.content
        if isinstance(message.content, list):
            return "".join(str(part.get("text", "")) for part in message.content if part.get("type") == "text")
    raise InvalidInput("messages must contain a user message")


def completion(result: ChatResult, model: str) -> dict[str, Any]:
    prompt_tokens = sum(m.tokens for m in result.turn.messages)
    return {
        "id": f"chatcmpl-{result.turn.session}-{result.reply.seq}",
        "object": "chat.completion",
        "created": result.reply.ts // 1000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.reply.content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": result.reply.tokens,
            "total_tokens": prompt_tokens + result.reply.tokens,
        },
    }


def chunk(base: dict[str, Any], delta: dict[str, str], finish_reason: str | None = None) -> str:
    body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def completion_chunks(svc: ServiceDep, stream: TurnStream, model: str) -> AsyncIterator[str]:
    base = {
        "id": f"chatcmpl-{stream.turn.session}-{stream.turn.seq}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    yield chunk(base, {"role": "assistant", "content": ""})
    try:
        async for delta in stream:
            yield chunk(base, {"content": delta})
        result = await stream.result()
    except Exception as exc:
        svc.metrics.errors.labels(error_kind(exc)).inc()
        yield f"data: {json.dumps(describe(exc).openai_body())}\n\n"
        return
    svc.metrics.observe(result, "chat_completions")
    yield chunk(base, {}, finish_reason="stop")
    yield "data: [DONE]\n\n"


@router.post(
    "/chat/completions",
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
    summary="OpenAI-compatible chat completion with server-side memory",
)
async def chat_completions(
    body: ChatCompletionRequest,
    svc: ServiceDep,
    tenant: TenantDep,
    x_session_id: SessionHeader = None,
    idempotency_key: MessageIdHeader = None,
    x_message_id: MessageIdHeader = None,
    x_user_id: UserHeader = None,
) -> Response:
    session = x_session_id or body.user
    if not session:
        detail = "name the session with the X-Session-Id header or the 'user' field"
        return Problem(400, "No session", detail).response(openai_style=True)
    message_id = idempotency_key or x_message_id
    model = body.model or svc.chat.model.name
    content = user_text(body)
    if body.stream:
        stream = await svc.chat.stream(session, content, message_id=message_id, tenant=tenant, user_id=x_user_id)
        return StreamingResponse(completion_chunks(svc, stream, model), media_type="text/event-stream")
    result = await svc.chat.turn(session, content, message_id=message_id, tenant=tenant, user_id=x_user_id)
    svc.metrics.observe(result, "chat_completions")
    return Response(json.dumps(completion(result, model), ensure_ascii=False), media_type="application/json")


# When this process started: the `created` of the one model the service answers with.
STARTED = int(time.time())


@router.get(
    "/models",
    responses=problem_responses(401, 429, openai_style=True),
    summary="OpenAI-compatible model list: the configured model",
)
async def list_models(svc: ServiceDep, tenant: TenantDep) -> dict[str, Any]:
    model = {"id": svc.chat.model.name, "object": "model", "created": STARTED, "owned_by": "turnstate"}
    return {"object": "list", "data": [model]}
