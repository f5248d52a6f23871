"""The turn protocol: each step one server-side script, one round trip.

`begin_turn` stores the user message and returns the prompt context; `finish_turn` stores the
reply. Between them the caller runs the model. The store knows Redis only: it never imports
the model, memory or API layers, so it stays usable alone as a library.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Generator, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AskError

from turnstate import codec, scripts
from turnstate.config import Settings
from turnstate.connection import Client, make_any_client, redacted, unavailable_as
from turnstate.errors import InvalidInput, SessionBusy, StaleTurn, TurnGone, TurnstateError
from turnstate.keys import SessionKeys, reply_id, session_keys, validate_message_id
from turnstate.servers import EmbeddedValkey
from turnstate.tokens import ApproximateCounter, TokenCounter, tokens_for_bytes
from turnstate.types import ROLES, Message, Policy, Role, SessionInfo, SummaryWork, Turn

MIN_WAIT_SECONDS = 0.01
MAX_BATCH = 1000  # messages per append_many: one script runs them all, blocking the server meanwhile

# A turn needs its session's keys twice; building them validates two ids and formats five names.
# Only valid ids are cached (an invalid one raises, and exceptions are not cached).
_cached_keys = functools.lru_cache(maxsize=1024)(session_keys)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class Store:
    """Conversation state for many sessions on one Redis-protocol server.

    Create one per process and share it: it holds the connection pool.
    """

    def __init__(
        self,
        client: Client,
        settings: Settings | None = None,
        *,
        token_counter: TokenCounter | None = None,
        address: str = "redis",
        url: str | None = None,
        embedded: EmbeddedValkey | None = None,
    ) -> None:
        # Typed as the plain client for the code that reads `store.client` (bench, doctor, health);
        # a RedisCluster answers the same command methods. Widen once those callers take `Client`.
        self.client = cast(aioredis.Redis, client)
        self.url = url  # with credentials: for components sharing the server (the job queue); never logged
        self.settings = settings or Settings()
        self.tokens: TokenCounter = token_counter or ApproximateCounter()
        self.address = address
        self.round_trips = 0  # requests sent to the server, for metrics
        self._embedded = embedded
        self._node_clients: dict[str, aioredis.Redis] = {}  # cluster only: where queued turns wait
        self._packed: tuple[Settings | None, str] = (None, "")

    # -- turns -------------------------------------------------------------------------------

    async def begin_turn(
        self,
        session: str,
        content: str,
        *,
        message_id: str | None = None,
        tenant: str | None = None,
        policy: Policy | str | None = None,
    ) -> Turn:
        """Store the user message and return the prompt context, in one round trip.

        A `message_id` seen before in this session returns that turn instead of storing the
        message again: answered (with `turn.reply`), or resumed for another try.
        Under `queue` the call waits for the running turn (up to `queue_wait_seconds`);
        under `reject` it raises SessionBusy at once.
        """
        tenant, keys = self._keys(session, tenant)
        try:
            policy = Policy(policy or self.settings.policy)
        except ValueError:
            raise InvalidInput(f"unknown policy {policy!r}: use one of {', '.join(p.value for p in Policy)}") from None
        message_id = validate_message_id(message_id) if message_id is not None else uuid.uuid4().hex
        body, _ = self._body(message_id, "user", content)
        args = [body, message_id, policy.value, self._settings_arg()]
        deadline = time.monotonic() + self.settings.queue_wait_seconds
        woken = False  # whether this call took the wake-up token that a releasing turn left
        while True:
            reply = await self._run(scripts.BEGIN_TURN, keys, args)
            if reply[0] != b"busy":
                break
            wait = reply[1] / 1000
            remaining = deadline - time.monotonic()
            if policy is Policy.REJECT or remaining <= 0:
                waited = policy is not Policy.REJECT
                raise SessionBusy(f"session {session!r} is busy with another turn", retry_after=wait, waited=waited)
            # Releasing a lease leaves a token on `wake`; an expired lease ends the wait too.
            timeout = max(MIN_WAIT_SECONDS, min(wait, remaining))
            woken = await self._wait_for_wake(keys.wake, timeout)
        status, seq, fence, summary, summary_upto, due, raw_reply, *window = reply
        if woken and status == b"answered":
            # Its message was answered meanwhile (a retry of it ran), so it takes no lease: the
            # next queued turn would wait for a release that never comes. Pass the token on.
            await self._pass_wake(keys.wake)
        answered = status == b"answered"
        if answered and not raw_reply:
            raise TurnstateError(f"message {message_id!r} was answered, but its reply is no longer held")
        return Turn(
            tenant=tenant,
            session=session,
            seq=seq,
            message_id=message_id,
            fence=fence,
            messages=codec.decode_many(window),
            summary=_text(summary) or None,
            summary_upto=summary_upto,
            summary_due=bool(due),
            reply=codec.decode(raw_reply) if answered else None,
            resumed=status != b"new",
        )

    async def finish_turn(self, turn: Turn, content: str) -> Message:
        """Store the reply to `turn` (its id: the question's, plus ":reply"), once, and release the session.

        Raises StaleTurn (storing nothing) if a newer turn took over the session's lease.
        Finishing an answered turn again returns the stored reply.
        """
        if turn.reply is not None:
            return turn.reply
        _, keys = self._keys(turn.session, turn.tenant)
        answer_id = reply_id(turn.message_id)
        body, tokens = self._body(answer_id, "assistant", content, reply_to=turn.seq)
        args = [body, turn.message_id, turn.seq, turn.fence, self._settings_arg()]
        reply = await self._run(scripts.FINISH_TURN, keys, args)
        status = reply[0]
        if status == b"answered":
            return codec.decode(reply[1])
        if status == b"stale":
            raise StaleTurn(f"turn {turn.seq} of session {turn.session!r} lost its lease to a newer turn")
        if status == b"gone":
            raise TurnGone(
                f"session {turn.session!r} no longer holds turn {turn.seq} (deleted, expired, or lost by a server"
                " restart without persistence): nothing was stored; begin the turn again"
            )
        if status == b"unknown":
            raise InvalidInput(f"turn {turn.seq} does not belong to session {turn.session!r}: nothing was stored")
        return Message(reply[1], answer_id, "assistant", content, tokens, reply[2], turn.seq)

    async def abort_turn(self, turn: Turn) -> bool:
        """Release the turn's lease without a reply; the user message stays, unanswered.

        A later begin_turn with the same message id resumes it. Returns False if the turn no
        longer held the lease.
        """
        if turn.fence == 0:
            return False
        _, keys = self._keys(turn.session, turn.tenant)
        released = await self._run(scripts.ABORT_TURN, keys, [turn.fence, self._settings_arg()])
        return bool(released)

    async def append(
        self,
        session: str,
        role: str,
        content: str,
        *,
        message_id: str | None = None,
        tenant: str | None = None,
        turn: Turn | None = None,
    ) -> Message:
        """Store a message outside the turn protocol (system notes, tool calls and results).

        Given the `turn` it belongs to, it is refused (StaleTurn) once a newer turn took over,
        and it renews the turn's lease. A `message_id` seen before is not stored again.
        """
        (stored,) = await self.append_many(session, [(role, content, message_id)], tenant=tenant, turn=turn)
        return stored

    async def append_many(
        self,
        session: str,
        messages: Sequence[tuple[str, str] | tuple[str, str, str | None]],
        *,
        tenant: str | None = None,
        turn: Turn | None = None,
    ) -> list[Message]:
        """Store (role, content[, message id]) messages in order, in one round trip, as `append` does each.

        All or nothing: if the turn has lost its lease, none is stored. A message id seen before
        (or twice in `messages`) returns the message stored first. At most MAX_BATCH messages.
        """
        if turn is not None:
            tenant = tenant or turn.tenant
            if (turn.session, turn.tenant) != (session, tenant):
                raise InvalidInput("the turn passed to append() belongs to another session")
        tenant, keys = self._keys(session, tenant)
        if not 0 < len(messages) <= MAX_BATCH:
            raise InvalidInput(f"append_many takes 1 to {MAX_BATCH} messages, not {len(messages)}")
        fence = "" if turn is None or turn.fence == 0 else turn.fence
        args: list[Any] = [fence, self._settings_arg()]
        rows: list[tuple[str, str, str, int]] = []
        for role, content, *rest in messages:
            if role not in ROLES:
                raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(sorted(ROLES))}")
            given = rest[0] if rest else None
            message_id = validate_message_id(given) if given is not None else uuid.uuid4().hex
            body, tokens = self._body(message_id, role, content)
            args += [body, message_id]
            rows.append((message_id, role, content, tokens))
        reply = await self._run(scripts.APPEND, keys, args)
        if reply[0] == b"stale":
            raise StaleTurn(f"turn {turn.seq if turn else '?'} of session {session!r} lost its lease")
        stored = []
        results = zip(reply[::3], reply[1::3], reply[2::3], strict=True)  # (status, seq or message, ts)
        for (message_id, role, content, tokens), (status, value, ts) in zip(rows, results, strict=True):
            if status == b"duplicate":
                if not value:  # the id's turn is held, but not this message: never seen in a test
                    raise TurnstateError(f"message id {message_id!r} was stored before and is no longer held")
                stored.append(codec.decode(value))
            else:
                stored.append(Message(value, message_id, cast(Role, role), content, tokens, ts))
        return stored

    async def remove(
        self, session: str, seq: int | None = None, *, tenant: str | None = None, turn: Turn | None = None
    ) -> Message | None:
        """Take message `seq` (default: the newest one) out of the session; return it, or None if not held.

        Its slot keeps a tombstone, so no other message's seq changes. Its message id is forgotten,
        and removing a reply leaves its turn unanswered: a retry of the turn asks the model again.
        A summary that already covers the message keeps it. Given a `turn`, it is refused
        (StaleTurn) once a newer turn took over.
        """
        _, keys = self._keys(session, tenant)
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
            raise InvalidInput(f"seq must be a positive integer, not {seq!r}")
        fence = "" if turn is None or turn.fence == 0 else turn.fence
        reply = await self._run(scripts.REMOVE, keys, [seq or 0, fence, self._settings_arg()])
        if reply[0] == b"stale":
            raise StaleTurn(f"turn {turn.seq if turn else '?'} of session {session!r} lost its lease")
        return codec.decode(reply[1]) if reply[0] == b"ok" else None

    async def pop(self, session: str, *, tenant: str | None = None, turn: Turn | None = None) -> Message | None:
        """Remove and return the newest message still held (see `remove`), or None if there is none."""
        return await self.remove(session, tenant=tenant, turn=turn)

    # -- summaries ---------------------------------------------------------------------------

    async def summary_work(self, session: str, *, tenant: str | None = None, max_messages: int = 200) -> SummaryWork:
        """The messages past the summary's watermark that have left the window (at most `max_messages`)."""
        _, keys = self._keys(session, tenant)
        summary, upto, target, *raws = await self._run(scripts.SUMMARY_WORK, keys, [self._settings_arg(), max_messages])
        return SummaryWork(_text(summary) or None, upto, target, codec.decode_many(raws))

    async def commit_summary(
        self, session: str, summary: str, *, expected_upto: int, new_upto: int, tenant: str | None = None
    ) -> bool:
        """Store a summary covering messages up to `new_upto`, if the watermark is still `expected_upto`.

        A compare-and-set: of two workers summarising the same step, one commits and the other
        gets False. Archived messages the summary covers are released.
        """
        if new_upto < expected_upto:
            raise InvalidInput("a summary cannot move the watermark back")
        _, keys = self._keys(session, tenant)
        tokens = self.tokens.count(summary)
        args = [expected_upto, new_upto, summary, tokens, self._settings_arg()]
        return bool(await self._run(scripts.COMMIT_SUMMARY, keys, args) >= 0)

    # -- reading and deleting ----------------------------------------------------------------

    async def history(self, session: str, *, tenant: str | None = None) -> list[Message]:
        """Every message still held (archive, then hot list), oldest first, in one snapshot."""
        _, keys = self._keys(session, tenant)
        reply = await self._run(scripts.READ_SESSION, keys, [1])
        return list(codec.decode_many(reply[7:]))

    async def recent(self, session: str, limit: int | None = None, *, tenant: str | None = None) -> list[Message]:
        """The newest `limit` messages of the hot list (all of it by default), oldest first.

        What a framework replaying history into each prompt should read: at most `max_messages`,
        never the archive that waits for the summariser.
        """
        _, keys = self._keys(session, tenant)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInput(f"limit must be a non-negative integer, not {limit!r}")
        if limit == 0:
            return []
        return list(codec.decode_many(await self._run(scripts.READ_RECENT, keys, [limit or 0])))

    async def info(self, session: str, *, tenant: str | None = None) -> SessionInfo:
        """Counts, summary and TTL of a session, without reading its messages."""
        tenant, keys = self._keys(session, tenant)
        last, hot, archived, summary, upto, pttl, lease = await self._run(scripts.READ_SESSION, keys, [0])
        return SessionInfo(
            tenant=tenant,
            session=session,
            last_seq=last,
            hot=hot,
            archived=archived,
            summary=_text(summary) or None,
            summary_upto=upto,
            ttl_seconds=pttl / 1000 if pttl >= 0 else None,
            lease_held=bool(lease),
        )

    async def delete(self, session: str, *, tenant: str | None = None) -> bool:
        """Remove every key of a session; True if anything was there."""
        _, keys = self._keys(session, tenant)
        async with self._request():
            return bool(await self.client.delete(*keys.all()))

    async def ping(self) -> bool:
        async with self._request():
            return bool(await self.client.ping())

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool, and stop the embedded server if this store started it."""
        await self.client.aclose()
        for node_client in self._node_clients.values():
            await node_client.aclose()
        if self._embedded is not None:
            self._embedded.stop()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------------

    def _keys(self, session: str, tenant: str | None) -> tuple[str, SessionKeys]:
        """The session's keys; session_keys validates both ids (and raises InvalidInput)."""
        tenant = self.settings.tenant if tenant is None else tenant
        build = _cached_keys if isinstance(tenant, str) and isinstance(session, str) else session_keys
        return tenant, build(self.settings.key_prefix, tenant, session)

    def _body(self, message_id: str, role: str, content: str, reply_to: int | None = None) -> tuple[str, int]:
        """Validate content; return the encoded body and its token count."""
        if not isinstance(content, str):
            raise InvalidInput(f"content must be a string, not {type(content).__name__}")
        if not content or content.isspace():
            raise InvalidInput("content is empty")
        try:
            size = len(content.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInput("content is not valid Unicode (it holds a lone surrogate)") from None
        if size > self.settings.max_content_bytes:
            raise InvalidInput(f"content is {size} bytes; the limit is {self.settings.max_content_bytes}")
        # The default counter needs only the byte length, which is at hand: no second encode.
        tokens = tokens_for_bytes(size) if type(self.tokens) is ApproximateCounter else self.tokens.count(content)
        body = codec.encode_body(message_id=message_id, role=role, content=content, tokens=tokens, reply_to=reply_to)
        return body, tokens

    def _settings_arg(self) -> str:
        """The settings the scripts read, as their one `settings` argument (see _lib.lua)."""
        s = self.settings
        if self._packed[0] is not s:
            packed = (
                f"{int(s.lease_seconds * 1000)} {s.max_messages} {s.window_messages} {s.window_tokens} "
                f"{s.ttl_seconds * 1000} {s.summary_every}"
            )
            self._packed = (s, packed)
        return self._packed[1]

    async def _wait_for_wake(self, wake: str, seconds: float) -> bool:
        """Block until a releasing turn leaves a token on `wake` (True: this call took it), or for `seconds` at most.

        On a cluster the wait runs on a plain client of the slot's node: after any connection
        error, redis-py's cluster client drops every connection of the node, and with them the
        wake-ups of the turns blocked on those connections. If the slot moves meanwhile, the node
        answers MOVED and the caller just tries again, through the cluster client that follows it.
        """
        client = self.client if not isinstance(self.client, RedisCluster) else self._node_client(wake)
        # MOVED (an AskError) or ASK: the slot is on its way to another node
        async with self._request():
            with suppress(AskError):
                return await client.blpop([wake], timeout=seconds) is not None
        return False

    async def _pass_wake(self, wake: str) -> None:
        """Leave the one wake-up token a releasing turn leaves (the list holds one at most)."""
        client = self.client if not isinstance(self.client, RedisCluster) else self._node_client(wake)
        async with self._request(), client.pipeline(transaction=True) as pipe:
            pipe.lpush(wake, 1)
            pipe.ltrim(wake, 0, 0)
            pipe.pexpire(wake, int(self.settings.lease_seconds * 1000))
            await pipe.execute()

    def _node_client(self, key: str) -> aioredis.Redis:
        """A plain client on the cluster node serving `key`'s slot, made once per node."""
        node = cast(RedisCluster, self.client).get_node_from_key(key)
        assert node is not None  # only a replica lookup answers None
        client = self._node_clients.get(node.name)
        if client is None:
            pool = aioredis.ConnectionPool(
                connection_class=node.connection_class,
                max_connections=self.settings.max_connections,
                **node.connection_kwargs,
            )
            client = self._node_clients[node.name] = aioredis.Redis.from_pool(pool)  # closes the pool with it
        return client

    def _request(self) -> AbstractAsyncContextManager[None]:
        self.round_trips += 1
        return unavailable_as(self.address)

    async def _run(self, script: scripts.Script, keys: SessionKeys, args: list[Any]) -> Any:
        self.round_trips += 1
        try:
            return await script(self.client, keys.all(), args)
        except Exception:
            # Entered only on failure: on every call, the context manager cost ~2 us per round trip.
            async with unavailable_as(self.address):
                raise


async def open_store(
    url: str | None = None, *, settings: Settings | None = None, token_counter: TokenCounter | None = None
) -> Store:
    """Open a Store on `url`, else `TURNSTATE_REDIS_URL`, else an embedded Valkey, and check it answers."""
    s = settings or Settings()
    url = url or (s.redis_url.get_secret_value() if s.redis_url else None)
    embedded = None
    if url is None:
        embedded = EmbeddedValkey(s.data_dir / "valkey")
        url = embedded.start()
    client = make_any_client(
        url, connect_timeout=s.connect_timeout_seconds, max_connections=s.max_connections, retries=s.redis_retries
    )
    store = Store(client, s, token_counter=token_counter, address=redacted(url), url=url, embedded=embedded)
    try:
        await store.ping()
    except BaseException:
        await store.aclose()
        raise
    return store


class _Connecting:
    """What `connect()` returns: await it for a Store, or use it with `async with`."""

    def __init__(self, url: str | None, settings: Settings | None, token_counter: TokenCounter | None) -> None:
        self._url, self._settings, self._counter = url, settings, token_counter
        self._store: Store | None = None

    def __await__(self) -> Generator[Any, None, Store]:
        return open_store(self._url, settings=self._settings, token_counter=self._counter).__await__()

    async def __aenter__(self) -> Store:
        self._store = await self
        return self._store

    async def __aexit__(self, *exc: object) -> None:
        if self._store is not None:
            await self._store.aclose()


def connect(
    url: str | None = None, *, settings: Settings | None = None, token_counter: TokenCounter | None = None
) -> _Connecting:
    """Open a Store on `url`, else `TURNSTATE_REDIS_URL`, else an embedded Valkey.

    `async with turnstate.connect() as store: ...`, or `store = await turnstate.connect()`.
    """
    return _Connecting(url, settings, token_counter)
