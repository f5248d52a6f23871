"""The web console at `/` in a real browser: Debian's chromium driven by Playwright's Python client."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_the_console_and_its_assets_are_served_without_a_key(offline_service: Any) -> None:
    async with httpx.AsyncClient(base_url=offline_service.url, timeout=10) as client:
        page = await client.get("/")
        assert page.status_code == 200 and "turnstate console" in page.text
        assert "http" not in page.text.replace("http-equiv", "")  # no CDN: every asset is served by the service
        for name, kind in [("console.js", "javascript"), ("console.css", "css")]:
            r = await client.get(f"/console/{name}")
            assert r.status_code == 200 and kind in r.headers["content-type"]
        assert (await client.get("/console/nope.js")).status_code == 404


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
async def test_a_message_typed_in_the_console_streams_a_reply_and_grows_the_window(offline_service: Any) -> None:
    from playwright.async_api import async_playwright, expect

    sid = f"console-{uuid.uuid4().hex[:8]}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(offline_service.url + "/")
            await page.fill("#key", "key-acme")
            await page.dispatch_event("#key", "change")
            await page.fill("#session", sid)
            await page.dispatch_event("#session", "change")
            await expect(page.locator("#meta")).to_contain_text("no such session")
            await expect(page.locator("#window li")).to_have_count(0)

            await page.fill("#message", "Hello from the browser")
            await page.click("#send")
            reply = page.locator("#log .msg.assistant").last
            await expect(reply).to_contain_text("Hello from the browser")
            await expect(reply).not_to_have_attribute("data-streaming", "true")
            await expect(page.locator("#window li")).to_have_count(2)
            await expect(page.locator("#window li").first).to_contain_text("Hello from the browser")
            await expect(page.locator("#status")).to_contain_text("state")

            await page.fill("#message", "And a second one")
            await page.press("#message", "Enter")
            await expect(page.locator("#window li")).to_have_count(4)
            await expect(page.locator("#meta")).to_contain_text("4 messages")
            assert await page.evaluate("localStorage.getItem('turnstate.key')") == "key-acme"

            page.on("dialog", lambda d: d.accept())
            await page.click("#delete")
            await expect(page.locator("#meta")).to_contain_text("no such session")
        finally:
            await browser.close()
