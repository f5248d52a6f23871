"""Long-term facts in PostgreSQL with pgvector: per tenant and user, superseded not overwritten, found by meaning.

A fact is a key ("user.name") and a sentence, stored with the sentence's vector. A (tenant, user,
key) has at most one current fact: remembering the same sentence again returns it, a different
sentence supersedes it, and the older row stays as history. Every statement filters by tenant,
so no call reaches another tenant's rows, whatever ids it is given.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from turnstate.config import Settings
from turnstate.errors import InvalidInput, MemoryUnavailable
from turnstate.keys import validate_id
from turnstate.memory.facts import (
    COLUMNS,
    Embedding,
    Fact,
    ScoredFact,
    checked_key,
    checked_range,
    checked_text,
    checked_vector,
    fact_from_row,
    normalised,
)
from turnstate.memory.postgres import Endpoint, Unreachable
from turnstate.memory.schema import MAX_HNSW_DIM, migrate, names
from turnstate.servers import EmbeddedPostgres

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "turnstate"
MAX_LIST = 1_000
MAX_EF_SEARCH = 1_000  # pgvector's limit
MAX_ATTEMPTS = 32  # remember() looks again only when a concurrent call for the same key committed first
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


_OWNER = "tenant = %(tenant)s AND user_id = %(user_id)s"
_SQL = {
    "current": f"SELECT {COLUMNS}, said_at, text_norm FROM {{facts}} WHERE {_OWNER} AND key = %(key)s"
    " AND superseded_at IS NULL FOR UPDATE",
    # A retried extraction job sends a fact again after a newer one superseded it: it must not win again.
    "replay": f"SELECT {COLUMNS} FROM {{facts}} WHERE {_OWNER} AND key = %(key)s AND text_norm = %(text_norm)s"
    " AND session_id IS NOT DISTINCT FROM %(session_id)s AND first_seq = %(first_seq)s AND last_seq = %(last_seq)s"
    " ORDER BY id LIMIT 1",
    "retire": "UPDATE {facts} SET superseded_at = now() WHERE id = %(old)s",
    "insert": "INSERT INTO {facts} (tenant, user_id, session_id, key, text, text_norm, embedding, first_seq, last_seq,"
    " said_at) VALUES (%(tenant)s, %(user_id)s, %(session_id)s, %(key)s, %(text)s, %(text_norm)s, %(embedding)s,"
    " %(first_seq)s, %(last_seq)s, %(said_at)s)"
    f" ON CONFLICT (tenant, user_id, key) WHERE superseded_at IS NULL DO NOTHING RETURNING {COLUMNS}",
    "link": "UPDATE {facts} SET superseded_by = %(new)s WHERE id = %(old)s",
    # A fact said before the key's current one arrives late: it joins the history, already superseded.
    "late": "INSERT INTO {facts} (tenant, user_id, session_id, key, text, text_norm, embedding, first_seq, last_seq,"
    " said_at, superseded_at, superseded_by) VALUES (%(tenant)s, %(user_id)s, %(session_id)s, %(key)s, %(text)s,"
    " %(text_norm)s, %(embedding)s, %(first_seq)s, %(last_seq)s, %(said_at)s, now(), %(current)s)",
    # The nearest current facts by the HNSW index, and how many the user has (capped at k): post-filtering
    # by tenant and user can leave the index's candidates short, which recall() then detects.
    "nearest": f"""
        WITH available AS (
            SELECT count(*) AS n FROM (
                SELECT FROM {{facts}} WHERE {_OWNER} AND superseded_at IS NULL LIMIT %(k)s
            ) AS capped
        ), hits AS (
            SELECT {COLUMNS}, 1 - (embedding <=> %(q)s) AS score FROM {{facts}}
            WHERE {_OWNER} AND superseded_at IS NULL ORDER BY embedding <=> %(q)s LIMIT %(k)s
        )
        SELECT available.n, hits.* FROM available LEFT JOIN hits ON true ORDER BY hits.score DESC, hits.id
    """,
    # Ordering by the score, not the distance operator, keeps the planner off the HNSW index: exact.
    "exact": f"SELECT {COLUMNS}, 1 - (embedding <=> %(q)s) AS score FROM {{facts}}"
    f" WHERE {_OWNER} AND superseded_at IS NULL ORDER BY score DESC, id LIMIT %(k)s",
    "history": f"SELECT {COLUMNS} FROM {{facts}} WHERE {_OWNER} AND key = %(key)s ORDER BY id",
    "delete_fact": "DELETE FROM {facts} WHERE tenant = %(tenant)s AND id = %(id)s",
    "delete_user_fact": f"DELETE FROM {{facts}} WHERE {_OWNER} AND id = %(id)s",
    "delete_user": f"DELETE FROM {{facts}} WHERE {_OWNER}",
    "delete_session": "DELETE FROM {facts} WHERE tenant = %(tenant)s AND session_id = %(session_id)s",
    "delete_user_messages": f"DELETE FROM {{messages}} WHERE {_OWNER}",
    "delete_session_messages": "DELETE FROM {messages} WHERE tenant = %(tenant)s AND session_id = %(session_id)s",
    "index_message": "INSERT INTO {messages} (tenant, user_id, session_id, seq, message_id, role, name, text,"
    " created_at, embedding) VALUES (%(tenant)s, %(user_id)s, %(session_id)s, %(seq)s, %(message_id)s, %(role)s,"
    " %(name)s, %(text)s, COALESCE(%(created_at)s, now()), %(embedding)s)"
    " ON CONFLICT (tenant, session_id, seq) DO NOTHING",
    "indexed_seqs": "SELECT count(*), max(seq) FROM {messages}"
    " WHERE tenant = %(tenant)s AND session_id = %(session_id)s",
    # One round trip: the nearest messages and facts by vector and the best by words, fused by reciprocal
    # rank (1 / (60 + rank) summed over the lists an item is in); each hit names its source messages.
    "search": f"""
        WITH query AS (SELECT websearch_to_tsquery('english', %(text)s) AS tsq),
        message_vec AS (
            SELECT id, row_number() OVER () AS r FROM (
                SELECT id FROM {{messages}} WHERE {_OWNER} ORDER BY embedding <=> %(q)s LIMIT %(n)s
            ) AS nearest
        ),
        message_words AS (
            SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM (
                SELECT m.id, ts_rank_cd(m.tsv, query.tsq) AS rank FROM {{messages}} AS m, query
                WHERE m.tenant = %(tenant)s AND m.user_id = %(user_id)s AND m.tsv @@ query.tsq
                ORDER BY rank DESC, m.id LIMIT %(n)s
            ) AS best
        ),
        fact_vec AS (
            SELECT id, row_number() OVER () AS r FROM (
                SELECT id FROM {{facts}} WHERE {_OWNER} AND superseded_at IS NULL
                ORDER BY embedding <=> %(q)s LIMIT %(n)s
            ) AS nearest
        ),
        fact_words AS (
            SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM (
                SELECT f.id, ts_rank_cd(to_tsvector('english'::regconfig, f.text), query.tsq) AS rank
                FROM {{facts}} AS f, query
                WHERE f.tenant = %(tenant)s AND f.user_id = %(user_id)s AND f.superseded_at IS NULL
                AND to_tsvector('english'::regconfig, f.text) @@ query.tsq
                ORDER BY rank DESC, f.id LIMIT %(n)s
            ) AS best
        ),
        fused AS (
            SELECT kind, id, sum(1.0 / (60 + r)) AS score FROM (
                SELECT 'message' AS kind, id, r FROM message_vec
                UNION ALL SELECT 'message', id, r FROM message_words
                UNION ALL SELECT 'fact', id, r FROM fact_vec
                UNION ALL SELECT 'fact', id, r FROM fact_words
            ) AS ranked GROUP BY kind, id ORDER BY score DESC, kind, id LIMIT %(k)s
        )
        SELECT fused.kind, fused.score, m.text, m.created_at, m.session_id, m.seq, m.message_id,
            NULL::jsonb AS fact_sources
        FROM fused JOIN {{messages}} AS m ON fused.kind = 'message' AND m.id = fused.id
        UNION ALL
        SELECT fused.kind, fused.score, f.text, coalesce(f.said_at, f.created_at), f.session_id, f.first_seq, NULL,
            (SELECT coalesce(jsonb_agg(jsonb_build_object('session', s.session_id, 'seq', s.seq,
                'message_id', s.message_id) ORDER BY s.seq), '[]'::jsonb)
             FROM {{messages}} AS s WHERE s.tenant = f.tenant AND s.session_id = f.session_id
             AND s.seq BETWEEN f.first_seq AND f.last_seq)
        FROM fused JOIN {{facts}} AS f ON fused.kind = 'fact' AND f.id = fused.id
        ORDER BY 2 DESC, 1, 5, 6
    """,
}

MAX_SEARCH = 100
MAX_BATCH = 1_000
ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class IndexedMessage:
    """A stored message to put in the episodic index; `text` is its content, without the speaker."""

    seq: int
    role: str
    text: str
    name: str | None = None
    message_id: str | None = None
    created_at: datetime | None = None

    @property
    def indexed_text(self) -> str:
        """What is indexed and shown: the speaker's name (else the role), then the text."""
        return f"{self.name or self.role}: {self.text}"


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result of FactStore.search: a message or a fact, its fused score, and the messages it came from."""

    kind: str  # "message" | "fact"
    text: str
    score: float
    created_at: datetime | None
    sources: list[dict[str, Any]] = field(default_factory=list)  # [{"session", "seq", "message_id"}]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text, "score": self.score, "sources": self.sources}
        if self.created_at is not None:
            out["created_at"] = self.created_at.isoformat()
        return out


class FactStore:
    """Facts for many tenants and users in one PostgreSQL schema; create one per process and share it (it pools).

    `dim` is the embedder's vector size and `model` its name: the schema is created for them and
    refuses to be opened with another. `ef_search` is how many candidates the HNSW search keeps
    (higher: better recall, slower); recall(k) needs k <= ef_search.
    """

    def __init__(
        self,
        conninfo: str,
        dim: int,
        *,
        model: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        connect_timeout: float = 5.0,
        max_connections: int = 10,
        ef_search: int = 100,
        embedded: EmbeddedPostgres | None = None,
    ) -> None:
        if not 1 <= dim <= MAX_HNSW_DIM:
            raise InvalidInput(f"embedding dimension {dim} is not in 1-{MAX_HNSW_DIM} (pgvector's HNSW limit)")
        if _SCHEMA_NAME.fullmatch(schema) is None:
            raise InvalidInput(f"invalid schema name {schema[:70]!r}: lower-case letters, digits and _")
        if not 1 <= ef_search <= MAX_EF_SEARCH:
            raise InvalidInput(f"ef_search must be in 1-{MAX_EF_SEARCH}")
        self.endpoint = Endpoint(conninfo)
        self.dim, self.model, self.schema, self.ef_search = dim, model, schema, ef_search
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._embedded = embedded
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._open_on_use = False  # set by open_on_use(): the database was down when the store was opened
        self._opening = asyncio.Lock()
        ids = names(schema)
        self._sql = {name: sql.SQL(text).format(**ids) for name, text in _SQL.items()}
        self._ids = ids

    @property
    def address(self) -> str:
        """Where the database is, without credentials: safe to log and show."""
        return self.endpoint.address

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> FactStore:
        """Create or upgrade the schema, then open the pool; MemoryUnavailable if the database cannot serve."""
        if self._pool is not None:
            return self
        timeout = max(2, round(self._connect_timeout))  # libpq's connect_timeout: whole seconds, at least 2
        async with self.endpoint.reached():
            conn = await psycopg.AsyncConnection.connect(
                self.endpoint.conninfo, autocommit=True, connect_timeout=timeout
            )
            async with conn:
                await migrate(conn, self.schema, self.dim, self.model, self.address)
            pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
                self.endpoint.conninfo,
                min_size=1,
                max_size=self._max_connections,
                kwargs={"autocommit": True, "connect_timeout": timeout},
                configure=self._configure,
                timeout=self._connect_timeout,
                name="turnstate-memory",
                open=False,
            )
            try:
                await pool.open(wait=True, timeout=self._connect_timeout)
            except BaseException:
                await pool.close()
                raise
        self._pool = pool
        return self

    def open_on_use(self) -> None:
        """Open at the first call instead (each call tries until one succeeds): for a database that is down now."""
        self._open_on_use = True

    async def aclose(self) -> None:
        """Close the pool, and let go of the embedded server if this store started it."""
        self._open_on_use = False
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)

    async def __aenter__(self) -> FactStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ping(self) -> bool:
        async with self._connection() as conn:
            await conn.execute("SELECT 1")
        return True

    # -- writing -----------------------------------------------------------------------------

    async def remember(
        self,
        tenant: str,
        user_id: str,
        key: str,
        text: str,
        embedding: Embedding,
        *,
        session_id: str | None = None,
        seq_range: tuple[int, int] | None = None,
        said_at: datetime | None = None,
    ) -> Fact:
        """Store a fact for a user; return the row that now holds it.

        - the same text as the key's current fact (ignoring case, spacing and a final full stop):
          that fact, unchanged;
        - the same text, session and `seq_range` as an earlier, superseded fact (a retried job):
          that row, unchanged, so an old extraction cannot undo a newer one;
        - a fact `said_at` before the key's current one (an older session summarised late): kept
          as history, already superseded; the current fact stays and is returned;
        - otherwise a new current fact; the key's previous one, if any, is superseded by it in the
          same transaction.
        Concurrent calls for one key are safe: the partial unique index on current facts decides,
        and a call that loses looks again.
        """
        first, last = checked_range(seq_range)
        clean = checked_text(text)
        params: dict[str, Any] = {
            **self._owner(tenant, user_id),
            "session_id": None if session_id is None else validate_id(session_id, "session id"),
            "key": checked_key(key),
            "text": clean,
            "text_norm": normalised(clean),
            "embedding": checked_vector(embedding, self.dim, "embedding"),
            "first_seq": first,
            "last_seq": last,
            "said_at": said_at,
        }
        async with self._connection() as conn:
            for _ in range(MAX_ATTEMPTS):
                async with conn.transaction():
                    fact = await self._remember_once(conn, params)
                if fact is not None:
                    return fact
        raise MemoryUnavailable(f"the fact {params['key']!r} kept changing under concurrent writes; try again")

    async def _remember_once(self, conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> Fact | None:
        """One attempt, inside a transaction; None when a concurrent call made a current fact first."""
        current = await (await conn.execute(self._sql["current"], params)).fetchone()
        if current is not None and current[-1] == params["text_norm"]:
            return fact_from_row(current)
        if params["first_seq"] is not None:
            replay = await (await conn.execute(self._sql["replay"], params)).fetchone()
            if replay is not None:
                return fact_from_row(replay)
        if current is not None and _said_before(params["said_at"], current[-2]):
            await conn.execute(self._sql["late"], {**params, "current": current[0]})
            return fact_from_row(current)
        if current is not None:
            await conn.execute(self._sql["retire"], {"old": current[0]})
        row = await (await conn.execute(self._sql["insert"], params)).fetchone()
        if row is None:
            return None
        if current is not None:
            await conn.execute(self._sql["link"], {"old": current[0], "new": row[0]})
        return fact_from_row(row)

    async def delete_fact(self, tenant: str, fact_id: int, *, user_id: str | None = None) -> bool:
        """Delete one fact (current or historical) of the tenant, or of that user if given; False if none."""
        if isinstance(fact_id, bool) or not isinstance(fact_id, int):
            raise InvalidInput("fact id must be an integer")
        if user_id is None:
            return await self._delete("delete_fact", {"tenant": validate_id(tenant, "tenant id"), "id": fact_id}) > 0
        return await self._delete("delete_user_fact", {**self._owner(tenant, user_id), "id": fact_id}) > 0

    async def delete_user(self, tenant: str, user_id: str) -> int:
        """Delete every fact of a user, history included; return how many rows went."""
        await self._delete("delete_user_messages", self._owner(tenant, user_id))
        return await self._delete("delete_user", self._owner(tenant, user_id))

    async def delete_session(self, tenant: str, session_id: str) -> int:
        """Delete the facts learned in a session, history included; return how many rows went."""
        params = {"tenant": validate_id(tenant, "tenant id"), "session_id": validate_id(session_id, "session id")}
        await self._delete("delete_session_messages", params)
        return await self._delete("delete_session", params)

    async def _delete(self, statement: str, params: dict[str, Any]) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(self._sql[statement], params)
            return cur.rowcount

    # -- the episodic index ------------------------------------------------------------------

    async def index_messages(
        self,
        tenant: str,
        user_id: str,
        session_id: str,
        messages: Sequence[IndexedMessage],
        embeddings: Sequence[Embedding],
    ) -> int:
        """Put a session's messages in the episodic index (embeddings of their `indexed_text`, in order).

        Idempotent: a (tenant, session, seq) already indexed is left as it is, so a retried job or
        a second flush adds nothing. Returns how many messages were new.
        """
        if len(messages) != len(embeddings):
            raise InvalidInput("index_messages needs one embedding per message")
        if len(messages) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} messages per call")
        owner = {**self._owner(tenant, user_id), "session_id": validate_id(session_id, "session id")}
        rows = []
        for message, embedding in zip(messages, embeddings, strict=True):
            if isinstance(message.seq, bool) or not isinstance(message.seq, int) or message.seq < 0:
                raise InvalidInput("a message's seq must be a non-negative integer")
            if message.role not in ROLES:
                raise InvalidInput(f"role must be one of {', '.join(sorted(ROLES))}")
            rows.append(
                {
                    **owner,
                    "seq": message.seq,
                    "message_id": message.message_id,
                    "role": message.role,
                    "name": message.name,
                    "text": message.indexed_text.replace("\x00", ""),
                    "created_at": message.created_at,
                    "embedding": checked_vector(embedding, self.dim, "embedding"),
                }
            )
        if not rows:
            return 0
        async with self._connection() as conn, conn.transaction():
            inserted = 0
            for row in rows:
                cur = await conn.execute(self._sql["index_message"], row)
                inserted += cur.rowcount
        return inserted

    async def indexed(self, tenant: str, session_id: str) -> tuple[int, int | None]:
        """How many of a session's messages are indexed, and the highest seq among them (None if none)."""
        params = {"tenant": validate_id(tenant, "tenant id"), "session_id": validate_id(session_id, "session id")}
        async with self._connection() as conn:
            row = await (await conn.execute(self._sql["indexed_seqs"], params)).fetchone()
        return (0, None) if row is None else (int(row[0]), None if row[1] is None else int(row[1]))

    async def search(
        self, tenant: str, user_id: str, text: str, query_embedding: Embedding, k: int = 5
    ) -> list[SearchHit]:
        """The user's k best messages and current facts for a query, best first, in one SQL round trip.

        Four ranked lists (messages by vector and by full-text, facts by vector and by full-text)
        fused by reciprocal rank. Every hit names its sources: a message itself, a fact the
        indexed messages of its seq range (an empty list when those are not indexed).
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SEARCH:
            raise InvalidInput(f"k must be an integer in 1-{MAX_SEARCH}")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("the search needs a query text")
        params = {
            **self._owner(tenant, user_id),
            "text": text[:2_000].replace("\x00", ""),
            "q": checked_vector(query_embedding, self.dim, "query embedding"),
            "k": k,
            "n": max(k * 4, 20),
        }
        async with self._connection() as conn:
            rows = await (await conn.execute(self._sql["search"], params)).fetchall()
        hits = []
        for kind, score, hit_text, created_at, session, seq, message_id, fact_sources in rows:
            if kind == "message":
                sources = [{"session": session, "seq": int(seq), "message_id": message_id}]
            else:
                sources = list(fact_sources or [])
                if not sources and session is not None and seq is not None:
                    sources = [{"session": session, "seq": int(seq), "message_id": None}]
            hits.append(SearchHit(str(kind), str(hit_text), float(score), created_at, sources))
        return hits

    # -- reading -----------------------------------------------------------------------------

    async def recall(self, tenant: str, user_id: str, query_embedding: Embedding, k: int = 5) -> list[ScoredFact]:
        """The user's k current facts most similar to the query, best first.

        The HNSW index answers first. It filters by tenant and user after finding candidates, so
        for a user with few facts among many it can come back short; then the user's facts are
        ranked exactly instead, which is cheap precisely because that user has few.
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.ef_search:
            raise InvalidInput(f"k must be an integer in 1-{self.ef_search} (the store's ef_search)")
        params = {
            **self._owner(tenant, user_id),
            "q": checked_vector(query_embedding, self.dim, "query embedding"),
            "k": k,
        }
        async with self._connection() as conn:
            rows = await (await conn.execute(self._sql["nearest"], params)).fetchall()
            available = int(rows[0][0]) if rows else 0
            hits = [row[1:] for row in rows if row[1] is not None]
            if len(hits) < available:
                hits = list(await (await conn.execute(self._sql["exact"], params)).fetchall())
        return [ScoredFact(fact_from_row(row), float(row[-1])) for row in hits]

    async def list_facts(
        self,
        tenant: str,
        user_id: str | None = None,
        session_id: str | None = None,
        include_superseded: bool = False,
        *,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[Fact]:
        """The tenant's facts, oldest first, optionally of one user and/or session; page with `after_id`."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be in 1-{MAX_LIST}")
        if isinstance(after_id, bool) or not isinstance(after_id, int):
            raise InvalidInput("after_id must be an integer (the last id of the previous page)")
        params: dict[str, Any] = {"tenant": validate_id(tenant, "tenant id"), "after_id": after_id, "limit": limit}
        where = [sql.SQL("tenant = %(tenant)s AND id > %(after_id)s")]
        if user_id is not None:
            params["user_id"] = validate_id(user_id, "user id")
            where.append(sql.SQL("user_id = %(user_id)s"))
        if session_id is not None:
            params["session_id"] = validate_id(session_id, "session id")
            where.append(sql.SQL("session_id = %(session_id)s"))
        if not include_superseded:
            where.append(sql.SQL("superseded_at IS NULL"))
        query = sql.SQL("SELECT {columns} FROM {facts} WHERE {where} ORDER BY id LIMIT %(limit)s").format(
            columns=sql.SQL(COLUMNS), where=sql.SQL(" AND ").join(where), **self._ids
        )
        async with self._connection() as conn:
            rows = await (await conn.execute(query, params)).fetchall()
        return [fact_from_row(row) for row in rows]

    async def history(self, tenant: str, user_id: str, key: str) -> list[Fact]:
        """Every fact a user has had under `key`, oldest first; the last is the current one unless it was deleted."""
        params = {**self._owner(tenant, user_id), "key": checked_key(key)}
        async with self._connection() as conn:
            rows = await (await conn.execute(self._sql["history"], params)).fetchall()
        return [fact_from_row(row) for row in rows]

    # -- internals ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None and self._open_on_use:
            async with self._opening:
                await self.open()
        if self._pool is None:
            raise MemoryUnavailable("the fact store is not open: await store.open() first")
        async with self.endpoint.reached(), self._pool.connection() as conn:
            yield conn

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Runs on each new pooled connection: numpy arrays as `vector`, and the HNSW search width."""
        await register_vector_async(conn)
        await conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(self.ef_search)])

    def _owner(self, tenant: str, user_id: str) -> dict[str, Any]:
        return {"tenant": validate_id(tenant, "tenant id"), "user_id": validate_id(user_id, "user id")}


def _said_before(new: datetime | None, current: datetime | None) -> bool:
    """Was the new fact said before the current one? Unknown times (older rows) never are."""
    return new is not None and current is not None and new < current


async def open_fact_store(
    settings: Settings, embed_dim: int, *, model: str | None = None, wait_for_database: bool = False
) -> FactStore:
    """An open FactStore on TURNSTATE_DATABASE_URL, else on an embedded PostgreSQL in `data_dir/postgres`.

    Pass the embedder's name as `model` so a later switch of embedder is refused instead of mixing
    vectors. Closing the store stops the embedded server when no one else uses it. With
    `wait_for_database`, a database that does not answer now is not an error: the store opens at
    its first call that reaches it (a service must start, and chat, while its memory is down).
    """
    url = settings.database_url.get_secret_value() if settings.database_url else None
    embedded = None
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        url = await asyncio.to_thread(embedded.start)
    try:
        store = FactStore(
            url, embed_dim, model=model, connect_timeout=settings.connect_timeout_seconds, embedded=embedded
        )
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    try:
        return await store.open()
    except Unreachable as exc:
        if not wait_for_database:
            await store.aclose()
            raise
        log.warning("%s; long-term memory will connect when it answers (turns go on without it)", exc)
        store.open_on_use()
        return store
    except BaseException:
        await store.aclose()
        raise
