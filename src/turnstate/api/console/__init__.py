"""The web console at `/`: a framework-free page (HTML, JS, CSS shipped in the wheel, no CDN).

It chats with a session through the streaming turn endpoint and shows, beside the chat, the state
as the model saw it, read from the public API with the key typed into the page.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

ASSETS = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def console_page() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"))


@router.get("/console/{name}")
async def console_asset(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        return Response(status_code=404)
    return Response(_asset(name), media_type=media, headers={"Cache-Control": "no-cache"})
