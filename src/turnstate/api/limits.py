"""A cap on request bodies, enforced while they stream in (a Content-Length can lie or be absent)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from turnstate.api.problems import OPENAI_PATHS, Problem


class BodyLimit:
    """ASGI middleware: answer 413 (problem details; OpenAI's shape on its endpoint) to a body over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now; to the app, the client has gone away.
                    refused = True
                    await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the limit is {self.max_bytes} bytes"
        openai_style = scope["path"].startswith(OPENAI_PATHS)
        await Problem(413, "Request body too large", detail).response(openai_style=openai_style)(scope, receive, send)
