"""LangGraph on plain Redis: `TurnstateSaver`, a checkpointer needing no Redis modules.

Each thread's checkpoints live in three keys sharing one hash tag, `<prefix>:lg:{<tenant>:<thread>}:`
(`cp` records, `ix` a lexicographic index of `<ns>\\0<checkpoint id>`, `w` pending writes), so
every write is one atomic Lua script on one slot and it runs on Redis Cluster, Valkey and
managed Redis alike. Values go through LangGraph's serializer (`self.serde`). Sync methods run
on a private event loop with their own connection to the store's server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from turnstate.connection import make_any_client
from turnstate.scripts import Script, ScriptClient
from turnstate.store import Store

T = TypeVar("T")
PUT = Script.load("lg_put", prelude=False)
PUT_WRITES = Script.load("lg_put_writes", prelude=False)
GET = Script.load("lg_get", prelude=False)
READ = Script.load("lg_read", prelude=False)
LOAD = Script.load("lg_load", prelude=False)
_SAFE = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")


def _b(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _tag(thread_id: str) -> str:
    """The thread id as it appears in the hash tag: itself when plain, else `=` and its UTF-8 hex."""
    return thread_id if _SAFE.fullmatch(thread_id) else "=" + thread_id.encode().hex()


def _pairs(flat: list[bytes | str]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _untag(tag: str) -> str:
    return bytes.fromhex(tag[1:]).decode() if tag.startswith("=") else tag


def _thread(config: RunnableConfig) -> str:
    try:
        return str(config["configurable"]["thread_id"])
    except KeyError:
        raise ValueError(
            "Checkpointer requires one or more of the following 'configurable' keys: thread_id, checkpoint_ns, "
            "checkpoint_id"
        ) from None


class TurnstateSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on `store`'s Redis; `ttl_seconds` expires an idle thread."""

    def __init__(
        self, store: Store, *, serde: SerializerProtocol | None = None, ttl_seconds: float | None = None
    ) -> None:
        super().__init__(serde=serde)
        self.store = store
        self.prefix = f"{store.settings.key_prefix}:lg"
        self.tenant = store.settings.tenant
        self.ttl_ms = int(ttl_seconds * 1000) if ttl_seconds else 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sync_client: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread()

    # keys and records ------------------------------------------------------------------------

    def _keys(self, thread_id: str) -> list[str]:
        base = f"{self.prefix}:{{{self.tenant}:{_tag(thread_id)}}}"
        return [f"{base}:cp", f"{base}:ix", f"{base}:w"]

    def _check_size(self, size: int) -> None:
        """Refuse a blob over the store's `max_content_bytes` before anything is stored."""
        limit = self.store.settings.max_content_bytes
        if size > limit:
            raise ValueError(f"checkpoint blob is {size} bytes; the limit is {limit} (max_content_bytes)")

    def _tuple(self, thread_id: str, member: str, record: str, writes: str) -> CheckpointTuple:
        ns, checkpoint_id = member.split("\0", 1)
        r = json.loads(record)
        rows = json.loads(writes) or []
        rows.sort(key=lambda w: (w[5], w[0], w[1]))
        parent = r["p"]
        return CheckpointTuple(
            config={"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}},
            checkpoint=self.serde.loads_typed((r["t"], base64.b64decode(r["c"]))),
            metadata=self.serde.loads_typed((r["mt"], base64.b64decode(r["m"]))),
            parent_config=(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent}}
                if parent
                else None
            ),
            pending_writes=[(w[0], w[2], self.serde.loads_typed((w[3], base64.b64decode(w[4])))) for w in rows],
        )

    # the async core (every method takes the client, so the sync side reuses it) ---------------

    async def _put(
        self, client: ScriptClient, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> RunnableConfig:
        thread_id = _thread(config)
        ns = config["configurable"].get("checkpoint_ns", "")
        ctype, cbytes = self.serde.dumps_typed(checkpoint)
        mtype, mbytes = self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))
        parent = config["configurable"].get("checkpoint_id")
        self._check_size(len(cbytes) + len(mbytes))
        record = json.dumps({"t": ctype, "c": _b(cbytes), "mt": mtype, "m": _b(mbytes), "p": parent})
        await PUT(client, self._keys(thread_id), [f"{ns}\0{checkpoint['id']}", record, self.ttl_ms])
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    async def _put_writes(
        self, client: ScriptClient, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, path: str
    ) -> None:
        thread_id = _thread(config)
        conf = config["configurable"]
        rows = []
        for i, (channel, value) in enumerate(writes):
            vtype, vbytes = self.serde.dumps_typed(value)
            self._check_size(len(vbytes))
            rows.append([task_id, WRITES_IDX_MAP.get(channel, i), channel, vtype, _b(vbytes), path])
        member = f"{conf.get('checkpoint_ns', '')}\0{conf['checkpoint_id']}"
        await PUT_WRITES(client, self._keys(thread_id), [member, json.dumps(rows), self.ttl_ms])

    async def _get(self, client: ScriptClient, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id = _thread(config)
        ns = config["configurable"].get("checkpoint_ns", "")
        found = await GET(client, self._keys(thread_id), [ns, get_checkpoint_id(config) or ""])
        if not found:
            return None
        return self._tuple(thread_id, *(_text(x) for x in found))

    async def _read(self, client: ScriptClient, thread_id: str) -> tuple[dict[str, str], dict[str, str]]:
        cps, ws = await READ(client, self._keys(thread_id), [])
        return _pairs(cps), _pairs(ws)

    async def _threads(self, client: Any) -> list[str]:
        pattern = f"{self.prefix}:{{{self.tenant}:*}}:ix"
        head = len(f"{self.prefix}:{{{self.tenant}:")
        found = {_text(k)[head : -len("}:ix")] async for k in client.scan_iter(pattern)}
        return sorted(_untag(t) for t in found)

    async def _list(
        self,
        client: Any,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> list[CheckpointTuple]:
        threads = [_thread(config)] if config else await self._threads(client)
        conf = config["configurable"] if config else {}
        ns, wanted = conf.get("checkpoint_ns"), conf.get("checkpoint_id")
        bound = get_checkpoint_id(before) if before else None
        out: list[CheckpointTuple] = []
        for thread_id in threads:
            cps, ws = await self._read(client, thread_id)
            for member in sorted(cps, key=lambda m: m.split("\0", 1)[1], reverse=True):
                m_ns, cid = member.split("\0", 1)
                if (ns is not None and m_ns != ns) or (wanted and cid != wanted) or (bound and cid >= bound):
                    continue
                item = self._tuple(thread_id, member, cps[member], ws.get(member, "[]"))
                if filter and any(item.metadata.get(k) != v for k, v in filter.items()):
                    continue
                out.append(item)
                if limit is not None and len(out) >= limit:
                    return out
        return out

    async def _delete_thread(self, client: Any, thread_id: str) -> None:
        for key in self._keys(thread_id):
            await client.delete(key)

    async def _remove(self, client: ScriptClient, thread_id: str, members: list[str]) -> None:
        if members:
            await LOAD(client, self._keys(thread_id), [self.ttl_ms, len(members), *members])

    async def _delete_for_runs(self, client: Any, run_ids: Sequence[str]) -> None:
        runs = set(run_ids)
        for thread_id in await self._threads(client):
            cps, _ = await self._read(client, thread_id)
            doomed = []
            for member, record in cps.items():
                r = json.loads(record)
                if self.serde.loads_typed((r["mt"], base64.b64decode(r["m"]))).get("run_id") in runs:
                    doomed.append(member)
            await self._remove(client, thread_id, doomed)

    async def _copy_thread(self, client: Any, source: str, target: str) -> None:
        cps, ws = await self._read(client, source)
        args: list[Any] = [self.ttl_ms, 0]
        for member, record in cps.items():
            args += [member, record]
        args.append("")
        for member, rows in ws.items():
            args += [member, rows]
        await LOAD(client, self._keys(target), args)

    async def _prune(self, client: Any, thread_ids: Sequence[str], strategy: str) -> None:
        for thread_id in thread_ids:
            if strategy == "delete":
                await self._delete_thread(client, thread_id)
                continue
            cps, _ = await self._read(client, thread_id)
            newest: dict[str, str] = {}
            for member in cps:
                ns, cid = member.split("\0", 1)
                newest[ns] = max(newest.get(ns, ""), cid)
            await self._remove(client, thread_id, [m for m in cps if m.split("\0", 1)[1] != newest[m.split("\0")[0]]])

    # the async API ------------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._put(self.store.client, config, checkpoint, metadata)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._put_writes(self.store.client, config, writes, task_id, task_path)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._get(self.store.client, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in await self._list(self.store.client, config, filter, before, limit):
            yield item

    async def adelete_thread(self, thread_id: str) -> None:
        await self._delete_thread(self.store.client, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._delete_for_runs(self.store.client, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._copy_thread(self.store.client, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._prune(self.store.client, thread_ids, strategy)

    # the sync API: the same core on a private loop and connection --------------------------------

    def _run(self, make: Any) -> Any:
        with self._lock:
            if self._loop is None:
                if not self.store.url:
                    raise RuntimeError("the sync methods need a Store opened with a url")
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="turnstate-langgraph", daemon=True)
                self._thread.start()
                self._sync_client = make_any_client(self.store.url, connect_timeout=5)
        coro: Coroutine[Any, Any, Any] = make(self._sync_client)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close the sync methods' connection and loop (the async side uses the store's own client)."""
        with self._lock:
            if self._loop is None:
                return
            asyncio.run_coroutine_threadsafe(self._sync_client.aclose(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._loop, self._sync_client = None, None

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        result: RunnableConfig = self._run(lambda c: self._put(c, config, checkpoint, metadata))
        return result

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self._run(lambda c: self._put_writes(c, config, writes, task_id, task_path))

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result: CheckpointTuple | None = self._run(lambda c: self._get(c, config))
        return result

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        yield from self._run(lambda c: self._list(c, config, filter, before, limit))

    def delete_thread(self, thread_id: str) -> None:
        self._run(lambda c: self._delete_thread(c, thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._run(lambda c: self._delete_for_runs(c, run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._run(lambda c: self._copy_thread(c, source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._run(lambda c: self._prune(c, thread_ids, strategy))
