"""Any OpenAI-compatible chat endpoint, through the official SDK.

OpenAI itself, Azure OpenAI (by base URL), Ollama, vLLM, llama.cpp's server and LiteLLM all speak
the chat-completions protocol, so one client covers them. The SDK owns the hard parts: retries
with backoff on 408/409/429/5xx (honouring Retry-After) and timeouts. This module only turns its
exceptions into ModelError, whose message never carries the API key.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from turnstate.config import Settings
from turnstate.errors import ModelError, ModelErrorKind
from turnstate.llm.base import PromptMessage

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_API_KEY = "no-key"  # keyless local servers (Ollama, vLLM) ignore it; the SDK refuses to start without one
MAX_DETAIL_CHARS = 300

_FAILURE = {
    "timeout": "timed out",
    "rate_limited": "is rate limited",
    "unavailable": "is unavailable",
    "auth": "rejected the credentials",
    "bad_request": "rejected the request",
}


class OpenAIModel:
    """A chat model at an OpenAI-compatible endpoint; create one per process and share it."""

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        """`timeout` bounds each request and each wait for the next delta; `max_retries` are the SDK's.

        Everything is passed to the SDK explicitly, so it does not read OPENAI_API_KEY or
        OPENAI_BASE_URL behind the settings' back. A `client` given here is not closed by aclose().
        """
        self.model = model
        self.name = f"openai:{model}"
        self._secret = api_key or ""
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client or openai.AsyncOpenAI(
            api_key=api_key or NO_API_KEY,
            base_url=base_url or DEFAULT_BASE_URL,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._where = endpoint_address(self._client)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIModel:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            settings.model,
            api_key=key,
            base_url=settings.openai_base_url,
            timeout=settings.model_timeout_seconds,
            max_retries=settings.model_max_retries,
        )

    async def stream(self, messages: Sequence[PromptMessage]) -> AsyncIterator[str]:
        """Stream a chat completion's text deltas.

        Raises ModelError when the request fails after the SDK's retries, and also when the
        stream breaks or ends before the model reported a finish reason, so a cut-off reply is
        never taken for a whole one.
        """
        payload = [cast(ChatCompletionMessageParam, {"role": m["role"], "content": m["content"]}) for m in messages]
        finished = False
        try:
            response = await self._client.chat.completions.create(model=self.model, messages=payload, stream=True)
            async with response:
                async for chunk in response:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield choice.delta.content
                        finished = finished or choice.finish_reason is not None
        except openai.OpenAIError as err:
            # `from None`: the SDK's exception text may quote the request or an echoed key.
            raise self._model_error(err) from None
        if not finished:
            raise ModelError(
                f"{self.name} at {self._where}: the stream ended before the reply was finished", "unavailable"
            )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    def _model_error(self, err: openai.OpenAIError) -> ModelError:
        kind, what = describe_failure(err, timeout=self._timeout, secret=self._secret)
        status = err.status_code if isinstance(err, openai.APIStatusError) else None
        retry_after = _retry_after(err.response.headers) if isinstance(err, openai.APIStatusError) else None
        return ModelError(f"{self.name} at {self._where} {what}", kind, retry_after=retry_after, status=status)


def endpoint_address(client: openai.AsyncOpenAI) -> str:
    """host[:port] of the client's endpoint, for error messages (the path and any credentials left out)."""
    url = client.base_url
    return f"{url.host}:{url.port}" if url.port else url.host


def describe_failure(err: openai.OpenAIError, *, timeout: float, secret: str) -> tuple[ModelErrorKind, str]:
    """The failure's kind, and what happened in a few words with `secret` blanked; shared with the embedder."""
    kind = _kind(err)
    detail = f"no response within {timeout:g}s" if isinstance(err, openai.APITimeoutError) else _detail(err)
    if secret:
        detail = detail.replace(secret, "***")
    return kind, f"{_FAILURE[kind]}: {detail}"


def _kind(err: openai.OpenAIError) -> ModelErrorKind:
    """What the caller can do about it: wait (timeout, rate_limited, unavailable) or fix something."""
    if isinstance(err, openai.APITimeoutError):
        return "timeout"
    if not isinstance(err, openai.APIStatusError):
        return "unavailable"  # connection refused or dropped, an error event mid-stream, a malformed reply
    code = err.status_code
    if code == 429:
        return "rate_limited"
    if code in (401, 403):
        return "auth"
    if code == 408:
        return "timeout"
    if code >= 500 or code == 409:
        return "unavailable"
    return "bad_request"


def _detail(err: openai.OpenAIError) -> str:
    """The provider's own explanation when it gave one, else the SDK's, kept short."""
    text = str(err)
    if isinstance(err, openai.APIError):
        body = err.body
        message = body.get("message") if isinstance(body, Mapping) else body
        text = message if isinstance(message, str) and message.strip() else err.message
        if isinstance(err, openai.APIStatusError):
            text = f"HTTP {err.status_code}: {text}"
        elif isinstance(err, openai.APIConnectionError) and err.__cause__ is not None:
            text = f"{text} ({err.__cause__})"  # e.g. connection refused, or a body cut short
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asked us to wait: retry-after-ms, Retry-After in seconds, or an HTTP date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        return max(0.0, seconds) if math.isfinite(seconds) else None
    value = headers.get("retry-after")
    try:
        when = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None
