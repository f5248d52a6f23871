"""Embeddings from any OpenAI-compatible endpoint (OpenAI, Azure, Ollama, vLLM, LiteLLM, ...), through the official SDK.

The SDK retries 408/409/429/5xx with backoff and enforces the timeout; failures become
EmbeddingError with the same kinds as chat-model errors, and the key never appears in a message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openai

from turnstate.config import Settings
from turnstate.errors import EmbeddingError
from turnstate.llm.openai import DEFAULT_BASE_URL, NO_API_KEY, describe_failure, endpoint_address
from turnstate.memory.embedder import Vectors, checked_texts, unit_rows

KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
"""Native vector sizes of OpenAI's models, so the default model needs no TURNSTATE_EMBEDDING_DIMENSIONS."""

MAX_BATCH = 256  # inputs per request; OpenAI accepts 2048, smaller batches keep one request's time bounded


class OpenAIEmbedder:
    """An embedding model at an OpenAI-compatible endpoint; create one per process and share it."""

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dim: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        """`dim` is the vector size: the model's own, or a shorter one for text-embedding-3 models.

        Only OpenAI's text-embedding-3 models can shorten vectors on request, so only they are sent
        `dimensions`; other models are expected to return `dim` values and are checked. A `client`
        given here is not closed by aclose().
        """
        size = dim or KNOWN_DIMENSIONS.get(model)
        if size is None:
            raise EmbeddingError(
                f"the vector size of embedding model {model!r} is unknown: set TURNSTATE_EMBEDDING_DIMENSIONS",
                "bad_request",
            )
        self.model = model
        self.name = f"openai:{model}"
        self.dim = size
        self._dimensions: int | openai.Omit = size if model.startswith("text-embedding-3") else openai.omit
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
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        """The embeddings endpoint and key if set, else the chat model's."""
        key = settings.embedding_api_key or settings.openai_api_key
        return cls(
            settings.embedding_model,
            dim=settings.embedding_dimensions,
            api_key=key.get_secret_value() if key else None,
            base_url=settings.embedding_base_url or settings.openai_base_url,
            timeout=settings.model_timeout_seconds,
            max_retries=settings.model_max_retries,
        )

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return await self._embed(texts)

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return await self._embed(texts)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def _embed(self, texts: Sequence[str]) -> Vectors:
        batch = checked_texts(texts)
        rows: list[list[float]] = []
        for start in range(0, len(batch), MAX_BATCH):
            rows.extend(await self._request(batch[start : start + MAX_BATCH]))
        if not rows:
            return np.empty((0, self.dim), dtype=np.float32)
        return unit_rows(rows, dim=self.dim, count=len(batch), who=f"{self.name} at {self._where}")

    async def _request(self, texts: list[str]) -> list[list[float]]:
        try:
            # "float", not the SDK's default base64: every compatible server speaks it.
            response = await self._client.embeddings.create(
                model=self.model, input=texts, dimensions=self._dimensions, encoding_format="float"
            )
        except openai.OpenAIError as err:
            kind, what = describe_failure(err, timeout=self._timeout, secret=self._secret)
            status = err.status_code if isinstance(err, openai.APIStatusError) else None
            # `from None`: the SDK's exception text may quote the request or an echoed key.
            raise EmbeddingError(f"{self.name} at {self._where} {what}", kind, status=status) from None
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
