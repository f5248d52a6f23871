"""Errors as JSON problem details (RFC 9457), never stack traces.

Each turnstate error maps to one status: bad input 422, busy 409 (policy reject) or 503 with
Retry-After (a queued turn waited too long), a stale turn or one the server no longer holds 409,
the server or the model unreachable 502/503/504, rate limits 429 with Retry-After. On the
OpenAI-compatible endpoint the same errors take OpenAI's shape (`{"error": {"message", "type",
"code"}}`), which its SDKs read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from turnstate.api.auth import Unauthorized
from turnstate.api.metrics import Metrics
from turnstate.api.ratelimit import RateLimited
from turnstate.api.schemas import ID, MESSAGE_ID, NOT_BLANK
from turnstate.errors import (
    InvalidInput,
    MemoryUnavailable,
    ModelError,
    ServerUnavailable,
    SessionBusy,
    StaleTurn,
    TurnGone,
    TurnstateError,
)
from turnstate.keys import ID_RULE, MESSAGE_ID_RULE
from turnstate.memory.postgres import Unreachable

log = logging.getLogger("turnstate.api")

MODEL_STATUS = {"timeout": 504, "rate_limited": 429, "unavailable": 502, "auth": 502, "bad_request": 502}
OPENAI_PATHS = ("/v1/chat/", "/v1/models")


@dataclass(frozen=True)
class Problem:
    status: int
    title: str
    detail: str
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail, **self.extra}

    def openai_body(self) -> dict[str, Any]:
        kind = self.extra.get("kind") or self.title.lower().replace(" ", "_")
        return {"error": {"message": self.detail, "type": kind, "code": self.status}}

    def response(self, *, openai_style: bool = False) -> JSONResponse:
        ra = self.retry_after
        headers = {"Retry-After": str(max(1, math.ceil(ra)))} if ra is not None else None
        if openai_style:
            return JSONResponse(self.openai_body(), status_code=self.status, headers=headers)
        media = "application/problem+json"
        return JSONResponse(self.body(), status_code=self.status, headers=headers, media_type=media)


class ProblemDoc(BaseModel):
    """The body of every error (documentation: answers are built by `Problem`)."""

    model_config = ConfigDict(title="Problem", extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class OpenAIErrorDoc(BaseModel):
    """An error on the OpenAI-compatible endpoint, in OpenAI's shape (documentation only)."""

    model_config = ConfigDict(title="OpenAIError")

    error: dict[str, str | int]


WHEN = {
    400: "no session named (X-Session-Id or `user`)",
    401: "no API key, or an unknown one",
    404: "no such session, fact or user memory (or memory is off)",
    409: "the session is busy (policy `reject`), or the turn went stale or is gone (begin it again)",
    413: "the body is over `max_request_bytes`",
    422: "the request does not match the schema, or an id or message is invalid; nothing was stored",
    429: "the tenant is over its rate limit, or the model is rate limited (`Retry-After`)",
    502: "the model failed",
    503: "the state store (or memory's database) is unreachable, or a queued turn waited too long (`Retry-After`)",
    504: "the model timed out",
}


def problem_responses(*statuses: int, openai_style: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, so clients (and schemathesis) know every answer."""
    media, doc = ("application/json", OpenAIErrorDoc) if openai_style else ("application/problem+json", ProblemDoc)
    content = {media: {"schema": doc.model_json_schema()}}
    return {status: {"description": WHEN[status], "content": content} for status in statuses}


def problem(status: int, title: str, detail: str, *, retry_after: float | None = None, **extra: Any) -> JSONResponse:
    return Problem(status, title, detail, retry_after, extra).response()


def error_kind(exc: BaseException) -> str:
    """A short label for metrics and logs."""
    if isinstance(exc, ModelError):
        return f"model_{exc.kind}"
    return type(exc).__name__


def describe(exc: BaseException) -> Problem:
    """The problem an error raised while serving a request stands for."""
    if isinstance(exc, Unauthorized):
        return Problem(401, "Unauthorized", str(exc))
    if isinstance(exc, RateLimited):
        return Problem(429, "Too many requests", str(exc), exc.retry_after, {"kind": "rate_limit_exceeded"})
    if isinstance(exc, InvalidInput):
        return Problem(422, "Invalid input", str(exc))
    if isinstance(exc, SessionBusy):
        return Problem(503 if exc.waited else 409, "Session busy", str(exc), exc.retry_after)
    if isinstance(exc, StaleTurn):
        return Problem(409, "Stale turn", str(exc))
    if isinstance(exc, TurnGone):
        return Problem(409, "Turn gone", str(exc))
    if isinstance(exc, ServerUnavailable):
        return Problem(503, "State store unavailable", str(exc), 1)
    if isinstance(exc, MemoryUnavailable):  # its database is down (worth a retry) or cannot serve memory
        return Problem(503, "Memory unavailable", str(exc), 1 if isinstance(exc, Unreachable) else None)
    if isinstance(exc, ModelError):
        status = MODEL_STATUS.get(exc.kind, 502)
        return Problem(status, "Model call failed", str(exc), exc.retry_after, {"kind": exc.kind})
    if isinstance(exc, TurnstateError):
        return Problem(500, "Internal error", str(exc))
    log.error("unhandled error", exc_info=exc)
    return Problem(500, "Internal error", "an unexpected error occurred; it has been logged")


RULES = {ID: f"must be {ID_RULE}", MESSAGE_ID: f"must be {MESSAGE_ID_RULE}", NOT_BLANK: "it is empty"}


def explain(error: Any) -> str:
    """A validation error in words: an id or message refused by its pattern says the rule, not the regex."""
    pattern = (error.get("ctx") or {}).get("pattern")
    if error.get("type") == "string_pattern_mismatch" and pattern in RULES:
        loc = error.get("loc") or ("value",)
        name = str(loc[-1]).replace("_", " ")
        return f"invalid {name} {str(error.get('input'))[:40]!r}: {RULES[pattern]}"
    return str(error.get("msg", ""))


def install(app: FastAPI, metrics: Callable[[], Metrics]) -> None:
    """Answer every error with problem details (OpenAI's shape on its endpoint), counting it by kind."""

    def respond(request: Request, found: Problem) -> JSONResponse:
        return found.response(openai_style=request.url.path.startswith(OPENAI_PATHS))

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        metrics().errors.labels(error_kind(exc)).inc()
        return respond(request, describe(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            # FastAPI's 400 for a body json.loads cannot read (invalid UTF-8, nesting too deep): it
            # is malformed JSON, which is 422 like any other.
            detail = f"the body is not valid JSON: {type(exc.__cause__).__name__}"
            return respond(request, Problem(422, "Invalid request", detail))
        return respond(request, Problem(exc.status_code, "HTTP error", str(exc.detail)))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": explain(e)} for e in exc.errors()]
        detail = "the request does not match the schema: " + "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        return respond(request, Problem(422, "Invalid request", detail, extra={"errors": errors}))

    # TurnstateError: expected, answered and counted. Exception: a bug; Starlette also logs it.
    app.add_exception_handler(TurnstateError, on_error)
    app.add_exception_handler(Exception, on_error)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
