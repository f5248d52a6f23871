"""The OpenAI-compatible endpoint, driven by the official `openai` SDK as the client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest


@pytest.fixture
async def sdk(offline_service: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{offline_service.url}/v1", api_key="key-acme", max_retries=0)
    yield client
    await client.close()


async def test_an_openai_client_gains_memory_by_changing_its_base_url(sdk: openai.AsyncOpenAI) -> None:
    user = f"oa-{uuid.uuid4().hex[:8]}"
    first = await sdk.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "My name is Ada."}], user=user
    )
    assert first.choices[0].message.content is not None
    assert "1 message in the window" in first.choices[0].message.content
    # the client sends only the new message; the service remembers the rest
    second = await sdk.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "What is my name?"}], user=user
    )
    content = second.choices[0].message.content or ""
    assert "3 messages in the window" in content and "What is my name?" in content
    assert second.usage is not None and second.usage.total_tokens > 0


async def test_streaming_through_the_sdk_with_a_session_header(sdk: openai.AsyncOpenAI) -> None:
    session = f"oa-{uuid.uuid4().hex[:8]}"
    stream = await sdk.chat.completions.create(
        model="anything",
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": "stream it"}],
        stream=True,
        extra_headers={"X-Session-Id": session, "Idempotency-Key": "req-1"},
    )
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    text = "".join(parts)
    assert len(parts) > 2 and "stream it" in text
    again = await sdk.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": "stream it"}],
        extra_headers={"X-Session-Id": session, "Idempotency-Key": "req-1"},
    )
    assert again.choices[0].message.content == text  # the retry returned the stored reply


async def test_a_request_without_a_session_is_a_clear_400(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="X-Session-Id"):
        await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError, match="user message"):
        await sdk.chat.completions.create(model="m", messages=[{"role": "system", "content": "hi"}], user="u1")


async def test_a_wrong_key_is_an_authentication_error(offline_service: Any) -> None:
    async with openai.AsyncOpenAI(base_url=f"{offline_service.url}/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError, match="unknown API key"):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], user="u")


async def test_models_lists_the_configured_model_in_openais_shape(
    sdk: openai.AsyncOpenAI, offline_service: Any
) -> None:
    page = await sdk.models.list()
    models = [m async for m in page]
    assert len(models) == 1
    assert models[0].id == "offline" and models[0].object == "model" and models[0].created > 0
    async with openai.AsyncOpenAI(base_url=f"{offline_service.url}/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError, match="unknown API key"):
            await client.models.list()
