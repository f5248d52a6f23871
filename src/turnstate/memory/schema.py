"""The facts table and its indexes, created and upgraded in place by a tiny versioned migration.

Everything lives in one PostgreSQL schema (`turnstate` by default): `facts`, and `meta`, which
records the schema version, the vector size and the embedding model. Vectors of different models
are not comparable, so opening the store with another model or size is refused rather than
letting recall silently return nonsense. Migrations run under an advisory lock, so processes that
start together do not race; an up-to-date schema needs only SELECT.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from turnstate.errors import MemoryUnavailable

SCHEMA_VERSION = 3
MAX_HNSW_DIM = 2_000  # pgvector indexes `vector` columns of at most 2,000 dimensions

# One tuple of statements per version; step N upgrades a schema at version N-1.
_STEPS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE {facts} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant text NOT NULL,
            user_id text NOT NULL,
            session_id text,
            key text NOT NULL,
            text text NOT NULL,
            text_norm text NOT NULL,
            embedding vector({dim}) NOT NULL,
            first_seq bigint,
            last_seq bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            superseded_at timestamptz,
            superseded_by bigint REFERENCES {facts} (id) ON DELETE SET NULL,
            CHECK ((first_seq IS NULL) = (last_seq IS NULL) AND first_seq <= last_seq)
        )
        """,
        # At most one current fact per key: what makes remember() race-safe (ON CONFLICT on it).
        "CREATE UNIQUE INDEX {current} ON {facts} (tenant, user_id, key) WHERE superseded_at IS NULL",
        "CREATE INDEX {history} ON {facts} (tenant, user_id, key, created_at)",
        "CREATE INDEX {sessions} ON {facts} (tenant, session_id) WHERE session_id IS NOT NULL",
        # Partial: superseded facts are never recalled, so they need not crowd the graph.
        "CREATE INDEX {nearest} ON {facts} USING hnsw (embedding vector_cosine_ops) WHERE superseded_at IS NULL",
    ),
    (
        # When the user said it: a fact supersedes another only if it was said later, whichever
        # extraction job happens to run last (an older session can be summarised after a newer one).
        "ALTER TABLE {facts} ADD COLUMN said_at timestamptz",
    ),
    (
        # The episodic index: the messages themselves, "Speaker: text", found by meaning and by words.
        """
        CREATE TABLE {messages} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant text NOT NULL,
            user_id text NOT NULL,
            session_id text NOT NULL,
            seq bigint NOT NULL,
            message_id text,
            role text NOT NULL,
            name text,
            text text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            embedding vector({dim}) NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED,
            UNIQUE (tenant, session_id, seq)
        )
        """,
        "CREATE INDEX {messages_owner} ON {messages} (tenant, user_id)",
        "CREATE INDEX {messages_words} ON {messages} USING gin (tsv)",
        "CREATE INDEX {messages_nearest} ON {messages} USING hnsw (embedding vector_cosine_ops)",
    ),
)
assert len(_STEPS) == SCHEMA_VERSION


def names(schema: str) -> dict[str, sql.Composable]:
    """Identifiers of the schema's objects, for sql.SQL(...).format(**names(schema))."""
    return {
        "schema": sql.Identifier(schema),
        "facts": sql.Identifier(schema, "facts"),
        "meta": sql.Identifier(schema, "meta"),
        "current": sql.Identifier("facts_current_key"),
        "history": sql.Identifier("facts_history"),
        "sessions": sql.Identifier("facts_session"),
        "nearest": sql.Identifier("facts_embedding_hnsw"),
        "messages": sql.Identifier(schema, "messages"),
        "messages_owner": sql.Identifier("messages_owner"),
        "messages_words": sql.Identifier("messages_tsv_gin"),
        "messages_nearest": sql.Identifier("messages_embedding_hnsw"),
    }


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str, dim: int, model: str | None, address: str) -> None:
    """Bring `schema` up to date for vectors of `dim` made by `model`; MemoryUnavailable if it cannot be used."""
    ids = names(schema)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"turnstate.memory:{schema}"])
            stored = await _read_meta(conn, schema, ids)
            meta = dict(stored)
            version = int(meta.get("version", "0"))
            if version > SCHEMA_VERSION:
                raise MemoryUnavailable(
                    f"the memory schema {schema!r} at {address} is at version {version}; this turnstate knows "
                    f"{SCHEMA_VERSION}: upgrade turnstate"
                )
            if version < SCHEMA_VERSION:
                await _create_vector_extension(conn, address)
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {schema}").format(**ids))
                await conn.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {meta} (key text PRIMARY KEY, value text NOT NULL)").format(
                        **ids
                    )
                )
                for step in _STEPS[version:]:
                    for statement in step:
                        await conn.execute(sql.SQL(statement).format(dim=sql.Literal(dim), **ids))
                meta.setdefault("dim", str(dim))
                meta["version"] = str(SCHEMA_VERSION)
            _check_embeddings(meta, schema, dim, model, address)
            if model is not None:
                meta.setdefault("model", model)
            await _write_meta(conn, ids, {key: value for key, value in meta.items() if stored.get(key) != value})
    except psycopg.errors.InsufficientPrivilege as exc:
        raise MemoryUnavailable(
            f"PostgreSQL at {address} refused to set up long-term memory: {exc.diag.message_primary}"
        ) from None


async def _read_meta(conn: psycopg.AsyncConnection[Any], schema: str, ids: dict[str, sql.Composable]) -> dict[str, str]:
    cur = await conn.execute("SELECT to_regclass(%s)", [f'"{schema}".meta'])
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return {}
    cur = await conn.execute(sql.SQL("SELECT key, value FROM {meta}").format(**ids))
    return {str(key): str(value) for key, value in await cur.fetchall()}


async def _write_meta(
    conn: psycopg.AsyncConnection[Any], ids: dict[str, sql.Composable], changes: dict[str, str]
) -> None:
    upsert = sql.SQL(
        "INSERT INTO {meta} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    ).format(**ids)
    for key, value in changes.items():
        await conn.execute(upsert, [key, value])


async def _create_vector_extension(conn: psycopg.AsyncConnection[Any], address: str) -> None:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'vector'),"
        " EXISTS (SELECT FROM pg_available_extensions WHERE name = 'vector')"
    )
    installed, available = await cur.fetchone() or (False, False)
    if installed:
        return
    if not available:
        raise MemoryUnavailable(
            f"PostgreSQL at {address} has no pgvector extension: install pgvector there, or unset "
            "TURNSTATE_DATABASE_URL to use the embedded PostgreSQL, which has it"
        )
    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def _check_embeddings(meta: dict[str, str], schema: str, dim: int, model: str | None, address: str) -> None:
    stored_dim = int(meta["dim"])
    stored_model = meta.get("model")
    if stored_dim != dim or (model is not None and stored_model not in (None, model)):
        made_by = f" made by {stored_model}" if stored_model else ""
        wanted = f"{model} ({dim} dimensions)" if model else f"{dim} dimensions"
        raise MemoryUnavailable(
            f"the facts in schema {schema!r} at {address} hold {stored_dim}-dimensional vectors{made_by}, but the "
            f"configured embedder makes {wanted}: use that embedder again, or another schema or database"
        )
