"""The episodic index on a real PostgreSQL with pgvector: idempotent indexing, fused search with sources, isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from turnstate.errors import InvalidInput
from turnstate.memory import FactStore, IndexedMessage, OfflineEmbedder


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[FactStore]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    facts = await FactStore(database_url, OfflineEmbedder().dim, schema=schema).open()
    yield facts
    await facts.aclose()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def embedder() -> OfflineEmbedder:
    return OfflineEmbedder()


CONVERSATION = [
    IndexedMessage(0, "user", "I adopted a puppy named Biscuit last weekend.", name="Alice", message_id="m0"),
    IndexedMessage(1, "user", "Nice! I went hiking in the Alps with my brother.", name="Bob", message_id="m1"),
    IndexedMessage(2, "user", "My favourite food is Thai green curry.", name="Alice", message_id="m2"),
    IndexedMessage(3, "assistant", "The weather tomorrow looks sunny.", message_id="m3"),
]


async def index(store: FactStore, embedder: OfflineEmbedder, tenant: str, messages: list[IndexedMessage]) -> int:
    vectors = await embedder.embed_passages([m.indexed_text for m in messages])
    return await store.index_messages(tenant, "u1", "s1", messages, list(vectors))


async def test_indexing_is_idempotent_and_counted(store: FactStore, embedder: OfflineEmbedder) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    assert await index(store, embedder, tenant, CONVERSATION) == 4
    assert await index(store, embedder, tenant, CONVERSATION) == 0
    assert await store.indexed(tenant, "s1") == (4, 3)
    assert await store.indexed(tenant, "other") == (0, None)


async def test_search_fuses_messages_and_facts_and_names_sources(store: FactStore, embedder: OfflineEmbedder) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await index(store, embedder, tenant, CONVERSATION)
    fact = "Alice adopted a puppy named Biscuit."
    [vector] = await embedder.embed_passages([fact])
    await store.remember(tenant, "u1", "alice.pet", fact, vector, session_id="s1", seq_range=(0, 0))
    query = "What is the name of Alice's puppy?"
    [q] = await embedder.embed_queries([query])
    hits = await store.search(tenant, "u1", query, q, k=3)
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top_two = {(h.kind, h.text) for h in hits[:2]}
    assert ("message", "Alice: I adopted a puppy named Biscuit last weekend.") in top_two
    assert ("fact", fact) in top_two
    for hit in hits:
        assert hit.sources and all({"session", "seq", "message_id"} <= set(s) for s in hit.sources)
        assert hit.created_at is not None
    fact_hit = next(h for h in hits if h.kind == "fact")
    assert fact_hit.sources == [{"session": "s1", "seq": 0, "message_id": "m0"}]
    words = await store.search(tenant, "u1", "Thai curry", q, k=1)
    assert words[0].sources == [{"session": "s1", "seq": 2, "message_id": "m2"}]
    assert words[0].as_dict()["kind"] == "message"


async def test_search_never_returns_another_tenants_or_users_messages(
    store: FactStore, embedder: OfflineEmbedder
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await index(store, embedder, tenant, CONVERSATION)
    [q] = await embedder.embed_queries(["puppy"])
    assert await store.search("another", "u1", "puppy", q) == []
    assert await store.search(tenant, "u2", "puppy", q) == []
    await store.delete_session(tenant, "s1")
    assert await store.search(tenant, "u1", "puppy", q) == []


async def test_bad_input_is_refused_and_nothing_is_stored(store: FactStore, embedder: OfflineEmbedder) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    [q] = await embedder.embed_queries(["x"])
    with pytest.raises(InvalidInput):
        await store.search(tenant, "u1", "  ", q)
    with pytest.raises(InvalidInput):
        await store.search(tenant, "u1", "x", q, k=0)
    bad: list[Any] = [IndexedMessage(0, "robot", "hi")]
    with pytest.raises(InvalidInput):
        await store.index_messages(tenant, "u1", "s1", bad, [q])
    assert await store.indexed(tenant, "s1") == (0, None)
