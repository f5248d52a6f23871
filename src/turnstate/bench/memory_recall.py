"""Recall latency at scale: a fact store bulk-loaded with synthetic facts, then FactStore.recall timed.

The facts are loaded with COPY, not remember(): random unit vectors (numpy, seeded), which says
nothing about recall quality (memory_eval does that) and everything about cost. Half of them
belong to one heavy user, the other half to users of `per_user` facts each, because PostgreSQL
plans recall's query differently for the two: for a user with few facts it reads that user's
rows by the (tenant, user, key) btree and sorts them exactly, at a cost that does not grow with
the table; for a user holding a large share of the table it uses the HNSW index. Which index
answered is read from pg_stat_user_indexes, not assumed.

As one loads a large table, the HNSW index is dropped before the COPY and built again afterwards
from its own definition (read from the catalogue), with enough maintenance_work_mem for the graph
to be built in memory; load and build times are reported. Random vectors have no clusters, which
makes them a hard case for building the graph.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql

from turnstate.bench.core import percentile
from turnstate.memory.embedder import OFFLINE_DIM, OFFLINE_NAME, Embedder, Vectors
from turnstate.memory.schema import names
from turnstate.memory.vectors import FactStore

TENANT = "bench"
HEAVY_USER = "heavy"
K = 5
WARMUP = 20
CHUNK = 10_000
INDEX_BUILD_MEMORY = "2GB"  # a 1M x 384 graph needs about that; SET is per session and allocated as needed
STATS_SETTLE_SECONDS = 0.5  # a closed backend's index statistics reach pg_stat_user_indexes shortly after
HNSW_INDEX = "facts_embedding_hnsw"

Query = Callable[[int], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Latency:
    samples: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        """Nearest-rank percentiles; no samples gives zeros with `samples` 0, which the reports show as such."""
        ordered = sorted(samples_ns)
        if not ordered:
            return cls(0, 0.0, 0.0)
        return cls(len(ordered), percentile(ordered, 0.50) / 1e6, percentile(ordered, 0.99) / 1e6)


@dataclass(frozen=True, slots=True)
class UserRecall:
    """Recall for one kind of user: its latency, and how many HNSW index scans one recall made."""

    facts: int  # the user's facts
    latency: Latency
    hnsw_scans_per_recall: float


@dataclass(frozen=True, slots=True)
class RecallScale:
    facts: int
    ef_search: int  # how many candidates the HNSW search keeps (the FactStore's setting)
    load_seconds: float
    index_seconds: float
    typical: UserRecall  # FactStore.recall for a user with per_user facts
    heavy: UserRecall  # the same for the user holding half the facts
    embed_and_recall: Latency  # the offline embedding of a question, then FactStore.recall (a typical user)


async def recall_at_scale(
    database_url: str,
    facts: int,
    embedder: Embedder,
    questions: Sequence[str],
    *,
    per_user: int = 100,
    queries: int = 300,
) -> RecallScale:
    """Load `facts` synthetic facts into a schema of their own, time recalls, then drop the schema."""
    rng = np.random.default_rng(facts)
    typical_users = max(1, facts // 2 // per_user)  # the odd-numbered facts, `per_user` to a user
    async with fact_schema(database_url) as (schema, conn, ef_search):
        load_seconds, index_seconds = await bulk_load(conn, schema, facts, per_user, rng)
        vectors = _unit_rows(rng, WARMUP + queries)

        async def random_vector(n: int) -> Any:
            return vectors[n]

        async def embedded(n: int) -> Any:
            return (await embedder.embed_queries([questions[n % len(questions)]]))[0]

        measure = _Measure(database_url, schema, conn)
        typical = await measure(lambda n: f"u{n % typical_users}", random_vector, queries)
        heavy = await measure(lambda n: HEAVY_USER, random_vector, queries)
        with_embedding = await measure(lambda n: f"u{n % typical_users}", embedded, max(1, queries // 3))
    return RecallScale(
        facts,
        ef_search,
        load_seconds,
        index_seconds,
        UserRecall(min(per_user, facts // 2), *typical),
        UserRecall((facts + 1) // 2, *heavy),
        with_embedding[0],
    )


@asynccontextmanager
async def fact_schema(database_url: str) -> AsyncIterator[tuple[str, psycopg.AsyncConnection[Any], int]]:
    """A fact store schema of its own (name, a connection with vectors registered, ef_search), dropped afterwards."""
    schema = f"turnstate_bench_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        async with FactStore(database_url, OFFLINE_DIM, model=OFFLINE_NAME, schema=schema) as created:
            ef_search = created.ef_search  # opening created the schema
        try:
            await register_vector_async(conn)
            yield schema, conn, ef_search
        finally:
            await conn.execute(sql.SQL("DROP SCHEMA {schema} CASCADE").format(**names(schema)))


def _unit_rows(rng: np.random.Generator, count: int) -> Vectors:
    rows = rng.standard_normal((count, OFFLINE_DIM), dtype=np.float32)
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)


async def bulk_load(
    conn: psycopg.AsyncConnection[Any],
    schema: str,
    facts: int,
    per_user: int,
    rng: np.random.Generator,
    *,
    heavy: bool = True,
) -> tuple[float, float]:
    """COPY the facts in with the HNSW index dropped, then build it again; (load seconds, build seconds).

    With `heavy`, every other fact is the heavy user's and the rest go `per_user` to a user;
    without, all of them go `per_user` to a user (u0, u1, ...).
    """
    ids = names(schema)
    found = await (await conn.execute("SELECT pg_get_indexdef(%s::regclass)", [f'"{schema}".{HNSW_INDEX}'])).fetchone()
    if found is None:
        raise RuntimeError(f"the fact store schema {schema} has no {HNSW_INDEX} index")
    await conn.execute(sql.SQL("DROP INDEX {schema}.{nearest}").format(**ids))
    started = time.perf_counter()
    copy = sql.SQL("COPY {facts} (tenant, user_id, key, text, text_norm, embedding) FROM STDIN (FORMAT BINARY)")
    async with conn.cursor() as cur, cur.copy(copy.format(**ids)) as rows:
        rows.set_types(["text", "text", "text", "text", "text", "vector"])
        for start in range(0, facts, CHUNK):
            for n, vector in enumerate(_unit_rows(rng, min(CHUNK, facts - start)), start):
                user = HEAVY_USER if heavy and n % 2 == 0 else f"u{(n // 2 if heavy else n) // per_user}"
                text = f"Synthetic fact number {n}."
                await rows.write_row((TENANT, user, f"synthetic.{n}", text, text.casefold(), vector))
    loaded = time.perf_counter()
    await conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", [INDEX_BUILD_MEMORY])
    await conn.execute(found[0])
    built = time.perf_counter()
    await conn.execute(sql.SQL("ANALYZE {facts}").format(**ids))  # what autovacuum would soon do
    return loaded - started, built - loaded


class _Measure:
    """Times recalls through a FactStore of its own, and counts the HNSW scans they made."""

    def __init__(self, database_url: str, schema: str, conn: psycopg.AsyncConnection[Any]) -> None:
        self.database_url, self.schema, self.conn = database_url, schema, conn

    async def __call__(self, user: Callable[[int], str], query: Query, count: int) -> tuple[Latency, float]:
        before = await self._hnsw_scans()
        store = await FactStore(self.database_url, OFFLINE_DIM, model=OFFLINE_NAME, schema=self.schema).open()
        samples = []
        try:
            for n in range(WARMUP + count):
                started = time.perf_counter_ns()
                await store.recall(TENANT, user(n), await query(n), K)
                if n >= WARMUP:
                    samples.append(time.perf_counter_ns() - started)
        finally:
            await store.aclose()  # a backend flushes its statistics when it exits
        await asyncio.sleep(STATS_SETTLE_SECONDS)
        return Latency.of(samples), (await self._hnsw_scans() - before) / (WARMUP + count)

    async def _hnsw_scans(self) -> int:
        cur = await self.conn.execute(
            "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE schemaname = %s AND indexrelname = %s",
            [self.schema, HNSW_INDEX],
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0
