"""Embedders: the offline e5 model for real, and the OpenAI-compatible client against the local stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pydantic
import pytest

from tests.openai_standin import EMBEDDING_DIM, standin_embedding
from turnstate import Settings
from turnstate.errors import EmbeddingError, InvalidInput
from turnstate.memory import OfflineEmbedder, embedder_from_settings
from turnstate.memory.openai_embedder import MAX_BATCH, OpenAIEmbedder

FACTS = [
    "The user's favourite food is sushi.",
    "The user works as a nurse at a hospital in Lisbon.",
    "The user has a dog called Rex.",
    "The user's sister Marta lives in Berlin.",
]
QUESTIONS = {
    "What do I like to eat?": 0,
    "Where is my job?": 1,
    "What is my pet's name?": 2,
    "Remind me where my sister lives": 3,
    "Qual é a minha comida favorita?": 0,  # multilingual: Portuguese for "what is my favourite food?"
}
SECRET = "sk-embed-secret-42"


@pytest.fixture(scope="module")
async def offline() -> AsyncIterator[OfflineEmbedder]:
    embedder = OfflineEmbedder()
    yield embedder
    await embedder.aclose()


async def test_the_offline_embedder_runs_on_the_threads_configured(offline: OfflineEmbedder) -> None:
    assert offline.threads == 1  # the default: steady on a busy machine (docs/benchmarks.md)
    embedder = embedder_from_settings(Settings(embedding_threads=0))  # 0: the engine's own default
    assert isinstance(embedder, OfflineEmbedder) and embedder.threads == 0
    try:
        same = await embedder.embed_queries(list(QUESTIONS)[:2])
        np.testing.assert_allclose(same, await offline.embed_queries(list(QUESTIONS)[:2]), atol=1e-4)
    finally:
        await embedder.aclose()
    with pytest.raises(pydantic.ValidationError):
        Settings(embedding_threads=-1)


def openai_embedder(
    standin: Any, model: str = "text-embedding-3-small", dim: int | None = EMBEDDING_DIM
) -> OpenAIEmbedder:
    return OpenAIEmbedder(model, dim=dim, api_key=SECRET, base_url=standin.base_url, max_retries=0, timeout=10)


async def test_offline_embeddings_rank_the_relevant_fact_first(offline: OfflineEmbedder) -> None:
    passages = await offline.embed_passages(FACTS)
    queries = await offline.embed_queries(list(QUESTIONS))
    assert passages.shape == (len(FACTS), 384) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    best = (queries @ passages.T).argmax(axis=1)
    assert best.tolist() == list(QUESTIONS.values())


async def test_offline_queries_and_passages_are_embedded_differently(offline: OfflineEmbedder) -> None:
    """e5 was trained with "query: " and "passage: " prefixes; the same text must not give the same vector."""
    text = ["The user has a dog called Rex."]
    query, passage = (await offline.embed_queries(text))[0], (await offline.embed_passages(text))[0]
    assert 0.5 < float(query @ passage) < 0.999
    assert np.array_equal((await offline.embed_passages(text))[0], passage)  # and each is deterministic


async def test_offline_embedding_runs_off_the_event_loop(offline: OfflineEmbedder) -> None:
    await offline.embed_queries(["warm up"])
    ticks = 0
    task = asyncio.create_task(offline.embed_passages(FACTS * 8))
    while not task.done():
        ticks += 1
        await asyncio.sleep(0.001)
    assert (await task).shape == (len(FACTS) * 8, 384)
    assert ticks >= 5  # the loop kept running while 32 passages (hundreds of milliseconds) were embedded


async def test_offline_embedder_refuses_bad_input(offline: OfflineEmbedder) -> None:
    assert (await offline.embed_queries([])).shape == (0, 384)
    with pytest.raises(InvalidInput, match="not one string"):
        await offline.embed_queries("a bare string")
    with pytest.raises(InvalidInput, match="non-blank"):
        await offline.embed_passages(["fine", "  "])


async def test_a_closed_offline_embedder_says_so() -> None:
    embedder = OfflineEmbedder()
    await embedder.aclose()
    with pytest.raises(EmbeddingError, match="closed") as caught:
        await embedder.embed_queries(["hello"])
    assert caught.value.transient


async def test_settings_choose_the_embedder() -> None:
    assert isinstance(embedder_from_settings(Settings(embeddings="offline")), OfflineEmbedder)
    chosen = embedder_from_settings(
        Settings(embeddings="openai", embedding_model="text-embedding-3-small", openai_api_key=SECRET)
    )
    await chosen.aclose()
    assert isinstance(chosen, OpenAIEmbedder)
    assert (chosen.name, chosen.dim) == ("openai:text-embedding-3-small", 1536)
    with pytest.raises(pydantic.ValidationError, match="TURNSTATE_EMBEDDINGS=openai"):
        Settings(embeddings="offline", embedding_base_url="http://127.0.0.1:9/v1")


async def test_openai_embedder_returns_the_endpoints_vectors_in_input_order(standin: Any) -> None:
    texts = [f"fact number {i}" for i in range(MAX_BATCH + 3)]
    embedder = openai_embedder(standin)
    try:
        vectors = await embedder.embed_passages(texts)
    finally:
        await embedder.aclose()
    assert np.allclose(vectors, [standin_embedding(t, EMBEDDING_DIM) for t in texts], atol=1e-6)
    assert [len(r.body["input"]) for r in standin.requests] == [MAX_BATCH, 3]  # batched
    first = standin.requests[0]
    assert first.path == "/v1/embeddings" and first.authorization == f"Bearer {SECRET}"
    assert first.body["model"] == "text-embedding-3-small"
    assert (first.body["dimensions"], first.body["encoding_format"]) == (EMBEDDING_DIM, "float")


async def test_models_other_than_openais_are_not_asked_to_shorten_vectors(standin: Any) -> None:
    embedder = openai_embedder(standin, model="nomic-embed-text")
    try:
        vectors = await embedder.embed_queries(["hello"])
    finally:
        await embedder.aclose()
    assert "dimensions" not in standin.requests[0].body
    assert np.allclose(vectors[0], standin_embedding("hello", EMBEDDING_DIM), atol=1e-6)


async def test_a_server_error_becomes_an_embedding_error_without_the_key(standin: Any) -> None:
    standin.fail(500)
    embedder = openai_embedder(standin)
    try:
        with pytest.raises(EmbeddingError) as caught:
            await embedder.embed_queries(["hello"])
    finally:
        await embedder.aclose()
    error = caught.value
    assert (error.kind, error.status, error.transient) == ("unavailable", 500, True)
    assert standin.base_url.split("//")[1].split("/")[0] in str(error)  # names host:port
    assert SECRET not in str(error)


async def test_a_rejected_key_is_not_echoed(standin: Any) -> None:
    standin.fail(401)  # the stand-in's message quotes the bearer token
    embedder = openai_embedder(standin)
    try:
        with pytest.raises(EmbeddingError) as caught:
            await embedder.embed_passages(["hello"])
    finally:
        await embedder.aclose()
    assert caught.value.kind == "auth" and not caught.value.transient
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


async def test_vectors_of_the_wrong_size_are_refused(standin: Any) -> None:
    embedder = openai_embedder(standin, model="some-local-model", dim=EMBEDDING_DIM * 2)
    try:
        with pytest.raises(EmbeddingError, match=f"{EMBEDDING_DIM}-dimensional.*{EMBEDDING_DIM * 2} were expected"):
            await embedder.embed_queries(["hello"])
    finally:
        await embedder.aclose()


def test_an_unknown_models_size_must_be_given() -> None:
    with pytest.raises(EmbeddingError, match="TURNSTATE_EMBEDDING_DIMENSIONS"):
        OpenAIEmbedder("mystery-model", api_key=SECRET)
