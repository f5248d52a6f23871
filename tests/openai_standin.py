"""A local stand-in for the remote OpenAI API: a real HTTP server on 127.0.0.1.

Tests point the real SDK at it, so its HTTP, retries, backoff and timeouts are exercised, not
imitated. It answers POST /v1/chat/completions (JSON, or server-sent events when `stream` is set) and
POST /v1/embeddings (vectors derived from each text's hash: see standin_embedding), records
every request, and can be told to fail, stall or cut a stream short.

    with OpenAIStandIn() as api:
        api.fail(429, times=1)
        model = OpenAIModel("m", api_key="k", base_url=api.base_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_REPLY = "Hello from the stand-in. It answers like OpenAI would."
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_exceeded"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None
    message: str | None


class _StreamCut(Exception):
    """Raised inside a streaming body to drop the connection mid-response."""


class OpenAIStandIn:
    """The server, its script of misbehaviours, and what it saw; use as a context manager."""

    def __init__(self, reply: str = DEFAULT_REPLY) -> None:
        self.reply = reply
        self.requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._stall_seconds = 0.0
        self._stall_after_chunks = 0
        self._cut_after: int | None = None
        self._cut_cleanly = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- what a test sets up -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._socket.getsockname()
        return f"http://{host}:{port}/v1"

    def fail(
        self, status: int, *, times: int = 1, retry_after: str | None = "0.001", message: str | None = None
    ) -> None:
        """Answer the next `times` requests with `status`.

        A tiny positive Retry-After keeps the SDK's retry instant: it honours a positive value but
        treats 0 as absent and falls back to its own backoff (about half a second). A 401's message
        echoes the bearer token, as careless servers do, to prove our errors redact it.
        """
        self._failures.extend([_Failure(status, retry_after, message)] * times)

    def stall(self, seconds: float, *, after_chunks: int = 0) -> None:
        """Go quiet for `seconds` (or until reset): before any response, or after some stream chunks."""
        self._stall_seconds, self._stall_after_chunks = seconds, after_chunks

    def cut_stream(self, after_chunks: int, *, cleanly: bool = False) -> None:
        """End streams after `after_chunks` content chunks: drop the connection, or end the body early."""
        self._cut_after, self._cut_cleanly = after_chunks, cleanly

    def reset(self, reply: str = DEFAULT_REPLY) -> None:
        """Forget requests and misbehaviours; release any stalled responses."""
        self.reply = reply
        self.requests.clear()
        self._failures.clear()
        self.stall(0.0)
        self._cut_after = None
        self._release()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OpenAIStandIn:
        # The socket listens before the server thread runs, so the first request just waits in
        # the backlog: no polling for readiness.
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", ws="none", http="h11", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[self._socket])), name="openai-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> OpenAIStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the server side (runs on the server thread's event loop) ----------------------------

    async def _chat(self, request: Request) -> Response:
        self._loop = asyncio.get_running_loop()
        body = json.loads(await request.body())
        self.requests.append(RecordedRequest(request.url.path, dict(request.headers), body))
        if self._failures:
            return self._error(self._failures.popleft(), request.headers.get("authorization", ""))
        if self._stall_seconds and not self._stall_after_chunks:
            await self._pause()
        model = str(body.get("model", "unknown"))
        if body.get("stream"):
            return StreamingResponse(self._events(model), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": self.reply}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    async def _events(self, model: str) -> AsyncIterator[str]:
        def event(delta: dict[str, str], finish_reason: str | None = None) -> str:
            chunk = {
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(chunk)}\n\n"

        yield event({"role": "assistant", "content": ""})
        for sent, word in enumerate(re.findall(r"\S+\s*", self.reply)):
            if sent == self._cut_after:
                if self._cut_cleanly:
                    return
                raise _StreamCut("the stand-in drops this connection on purpose")
            if self._stall_seconds and self._stall_after_chunks and sent == self._stall_after_chunks:
                await self._pause()
            yield event({"content": word})
        yield event({}, "stop")
        yield "data: [DONE]\n\n"

    def _error(self, failure: _Failure, authorization: str) -> Response:
        message = failure.message
        if message is None:
            token = authorization.removeprefix("Bearer ")
            message = f"Incorrect API key provided: {token}." if failure.status == 401 else "The stand-in says no."
        headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else None
        error = {
            "message": message,
            "type": ERROR_TYPES.get(failure.status, "server_error"),
            "param": None,
            "code": None,
        }
        return JSONResponse({"error": error}, status_code=failure.status, headers=headers)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._stall_seconds)

    def _release(self) -> None:
        """Wake stalled handlers (from any thread) and arm a fresh event for later stalls."""
        wake, self._wake = self._wake, asyncio.Event()
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop stopped in between
                self._loop.call_soon_threadsafe(wake.set)

    async def _embeddings(self, request: Request) -> Response:
        """Vectors of `dimensions` (default EMBEDDING_DIM) values per input; the float encoding only."""
        body = json.loads(await request.body())
        self.requests.append(RecordedRequest(request.url.path, dict(request.headers), body))
        if self._failures:
            return self._error(self._failures.popleft(), request.headers.get("authorization", ""))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if body.get("encoding_format") != "float":
            return JSONResponse({"error": {"message": "only float here", "type": "invalid_request_error"}}, 400)
        dim = int(body.get("dimensions") or EMBEDDING_DIM)
        data = [
            {"object": "embedding", "index": i, "embedding": standin_embedding(text, dim)}
            for i, text in enumerate(texts)
        ]
        data.reverse()  # servers may answer out of order; clients must go by `index`
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"), "usage": usage})


EMBEDDING_DIM = 8


def standin_embedding(text: str, dim: int) -> list[float]:
    """A unit vector that depends only on the text: what the stand-in's embeddings endpoint returns for it."""
    digest = hashlib.sha256(text.encode()).digest() * (dim // 32 + 1)
    values = [byte - 127.5 for byte in digest[:dim]]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]
