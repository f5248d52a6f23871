"""The HTTP service's cost: a turn through `turnstate serve` against the same turn through the library.

Both sides use the offline model (instant, so the model costs next to nothing) and no long-term
memory, on the same Redis server, so the difference is the HTTP layer and the process boundary:
the client's request and response handling, uvicorn, FastAPI and its validation, and JSON.

- Overhead per turn: `Chat.turn` in this process, against POST /v1/sessions/{id}/turns to a
  service process, as JSON and as server-sent events read to the end; one turn at a time, the
  three interleaved in blocks, the order rotating, so drift of the machine hits all alike.
- Throughput: N clients at once, each on its own session, each sending its next turn when the
  last one is answered, for a bounded time and number of turns.

One httpx AsyncClient with a connection pool (HTTP/1.1, keep-alive) sends every request, to
127.0.0.1 only. Load generator, service and server share the machine's cores, so throughput is a
lower bound and the figures are comparable within one run only; the CPU each used is reported.
"""

from __future__ import annotations

import asyncio
import gc
import json
import operator
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from redis.exceptions import RedisError

from turnstate.bench.core import bench_server, percentile, server_version
from turnstate.bench.process import ServiceProcess
from turnstate.bench.workloads import MESSAGE_BYTES, Texts
from turnstate.chat import Chat
from turnstate.config import Settings
from turnstate.errors import TurnstateError
from turnstate.llm import OfflineModel
from turnstate.store import Store, open_store

HTTP_TIMEOUT_SECONDS = 120.0


class TurnFailed(Exception):
    """A turn was answered, but not with a stored reply to its own, new message."""


FAILURES = (httpx.HTTPError, TurnstateError, TurnFailed, ValueError)


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds used by each party; None where it cannot be read from here.

    `client` is this process: the library's turn in-process, or the HTTP client's side of one.
    """

    client: float
    service: float | None
    server: float | None

    def __add__(self, other: Cpu) -> Cpu:
        return self._combine(other, operator.add)

    def __sub__(self, before: Cpu) -> Cpu:
        return self._combine(before, operator.sub)

    def _combine(self, other: Cpu, op: Callable[[float, float], float]) -> Cpu:
        def each(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else op(a, b)

        return Cpu(op(self.client, other.client), each(self.service, other.service), each(self.server, other.server))


NO_CPU = Cpu(0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall time per timed turn that succeeded (ms), the CPU they took, and the failures (warm-up turns too)."""

    turns: int
    failures: int
    p50_ms: float
    p99_ms: float
    cpu: Cpu = NO_CPU
    first_failure: str | None = None


def timing(samples_ns: Sequence[int], failures: int = 0, first_failure: str | None = None, cpu: Cpu = NO_CPU) -> Timing:
    ordered = sorted(samples_ns)
    if not ordered:
        return Timing(0, failures, float("nan"), float("nan"), cpu, first_failure)
    p50, p99 = (percentile(ordered, q) / 1e6 for q in (0.50, 0.99))
    return Timing(len(ordered), failures, p50, p99, cpu, first_failure)


@dataclass(frozen=True, slots=True)
class Load:
    """One concurrency level: turns per second over the level's wall time, and per-turn latency."""

    clients: int
    timing: Timing
    seconds: float

    @property
    def turns_per_second(self) -> float:
        return self.timing.turns / self.seconds


@dataclass(frozen=True, slots=True)
class ServiceBenchResult:
    library: Timing  # Chat.turn in this process
    service: Timing  # POST .../turns, JSON
    streaming: Timing  # POST .../turns, server-sent events read to `done`
    inside: Timing  # the service's own time in Chat.turn (state_ms + model_ms), JSON turns
    loads: tuple[Load, ...]
    turns: int
    blocks: int
    warmup: int
    seconds: float
    max_turns: int
    message_bytes: int
    client_per_session: bool
    server: str
    machine: str

    @property
    def overhead_p50_ms(self) -> float:
        return self.service.p50_ms - self.library.p50_ms

    @property
    def overhead_p99_ms(self) -> float:
        return self.service.p99_ms - self.library.p99_ms

    @property
    def failures(self) -> int:
        timings = (self.library, self.service, self.streaming, *(load.timing for load in self.loads))
        return sum(t.failures for t in timings)


class Turns(Protocol):
    """Successive turns of one session; `turn` returns the service's own time for it (ns), if known."""

    session: str

    async def turn(self) -> int | None: ...


class LibraryTurns:
    """What an application embedding the library does per turn."""

    def __init__(self, chat: Chat, session: str, texts: Texts) -> None:
        self.chat, self.session, self.texts, self.n = chat, session, texts, 0

    async def turn(self) -> None:
        n, self.n = self.n, self.n + 1
        result = await self.chat.turn(self.session, self.texts.user(n), message_id=f"m{n}")
        if result.turn.resumed or result.reply.reply_to != result.turn.seq:
            raise TurnFailed(f"turn {n} of {self.session}: reply to {result.reply.reply_to}, not {result.turn.seq}")


class ServiceTurns:
    """POST /v1/sessions/{id}/turns; with `stream`, the events are read to the last one."""

    def __init__(self, http: httpx.AsyncClient, session: str, texts: Texts, *, stream: bool = False) -> None:
        self.http, self.session, self.texts, self.stream, self.n = http, session, texts, stream, 0
        self.path = f"/v1/sessions/{session}/turns"

    async def turn(self) -> int:
        n, self.n = self.n, self.n + 1
        body = {"message": self.texts.user(n), "message_id": f"m{n}", "stream": self.stream}
        response = await self.http.post(self.path, json=body)
        if response.status_code != 200:
            raise TurnFailed(f"HTTP {response.status_code} for {self.path}: {response.text[:300]}")
        return answered(done_event(response.text) if self.stream else response.json())


def done_event(text: str) -> Any:
    """The data of a stream's last event, which must be `done` (the reply stored)."""
    last = text.strip().rsplit("\n\n", 1)[-1]
    fields = dict(line.split(": ", 1) for line in last.splitlines() if ": " in line)
    if fields.get("event") != "done":
        raise TurnFailed(f"the stream ended with {last[:300]!r}")
    return json.loads(fields["data"])


def answered(body: Any) -> int:
    """The service's own time for the turn (ns), once the body shows a stored reply to a new message."""
    try:
        ok = body["resumed"] is False and body["reply"]["reply_to"] == body["seq"]
        inside_ms = float(body["state_ms"]) + float(body["model_ms"])
    except (KeyError, TypeError) as exc:
        raise TurnFailed(f"unexpected answer: {str(body)[:300]}") from exc
    if not ok:
        raise TurnFailed(f"not a new, answered turn: {str(body)[:300]}")
    return round(inside_ms * 1e6)


@dataclass
class Tally:
    """Turns run: durations of the timed ones that succeeded, the service's own times, every failure.

    A failed turn is counted, never timed, and does not stop the run: failures are a result too.
    """

    samples: list[int] = field(default_factory=list)
    inside: list[int] = field(default_factory=list)
    failures: int = 0
    first_failure: str | None = None
    cpu: Cpu = NO_CPU

    async def time(self, turn: Callable[[], Awaitable[int | None]], *, timed: bool = True) -> None:
        start = time.perf_counter_ns()
        try:
            inside = await turn()
        except FAILURES as exc:
            self.failures += 1
            self.first_failure = self.first_failure or f"{type(exc).__name__}: {exc}"
            return
        if not timed:
            return
        self.samples.append(time.perf_counter_ns() - start)
        if inside is not None:
            self.inside.append(inside)

    def timing(self) -> Timing:
        return timing(self.samples, self.failures, self.first_failure, self.cpu)


class CpuMeter:
    """Reads the CPU time used so far by this process, the service process and the Redis server."""

    def __init__(self, service: ServiceProcess, store: Store) -> None:
        self.service, self.store = service, store

    async def read(self) -> Cpu:
        try:
            info = await self.store.client.info("cpu")
            server: float | None = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        except (RedisError, KeyError):
            server = None  # managed services may refuse INFO
        return Cpu(time.process_time(), self.service.cpu_seconds(), server)


async def warm(turns: Turns, count: int, tally: Tally) -> None:
    """Untimed turns, so connections are open, scripts cached and the window full; failures still count."""
    for _ in range(count):
        await tally.time(turns.turn, timed=False)


async def interleaved(
    variants: Sequence[tuple[Turns, Tally]], meter: CpuMeter, *, turns: int, blocks: int, warmup: int
) -> None:
    """One turn at a time: each variant `turns` in a row per block, the order rotating from block to block."""
    for variant, tally in variants:
        await warm(variant, warmup, tally)
    for b in range(blocks):
        gc.collect()  # between blocks, never inside one
        k = b % len(variants)
        for variant, tally in [*variants[k:], *variants[:k]]:
            before = await meter.read()
            for _ in range(turns):
                await tally.time(variant.turn)
            tally.cpu += (await meter.read()) - before


async def load(clients: Sequence[Turns], meter: CpuMeter, *, warmup: int, seconds: float, max_turns: int) -> Load:
    """Every client sends its next turn once the last is answered, until `seconds` pass or `max_turns` are sent."""
    tally = Tally()
    await asyncio.gather(*(warm(c, warmup, tally) for c in clients))
    gc.collect()
    before = await meter.read()
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)

    async def client(turns: Turns) -> None:
        for _ in range(max_turns):
            if time.perf_counter_ns() >= deadline:
                return
            await tally.time(turns.turn)

    await asyncio.gather(*(client(c) for c in clients))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    tally.cpu = (await meter.read()) - before
    return Load(len(clients), tally.timing(), elapsed)


def http_client(base_url: str, connections: int) -> httpx.AsyncClient:
    """HTTP/1.1 with keep-alive, at most `connections` at once; no proxy from the environment: 127.0.0.1 only."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=HTTP_TIMEOUT_SECONDS, trust_env=False)


async def delete_sessions(store: Store, sessions: Sequence[Turns]) -> None:
    for s in sessions:
        await store.delete(s.session)


def machine() -> str:
    """Cores this process may use, the CPU model, the OS and Python: what the figures depend on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or "unknown CPU"
    try:
        names = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        model = names[0].split(":", 1)[1].strip() if names else model
    except OSError:
        pass
    return f"{cores} CPUs ({model}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


async def run_service_bench(
    url: str | None,
    *,
    turns: int = 50,
    blocks: int = 20,
    clients: Sequence[int] = (1, 32, 256),
    seconds: float = 10.0,
    max_turns: int = 2000,
    warmup: int = 10,
    message_bytes: int = MESSAGE_BYTES,
    client_per_session: bool = False,
    key_prefix: str | None = None,
) -> ServiceBenchResult:
    """Measure the overhead, then each concurrency level, on `url` or a fresh embedded Valkey.

    A `turnstate serve` process is started for the run (local auth mode, offline model, memory
    off, other `TURNSTATE_*` settings as in this environment). Everything is written under a
    fresh key prefix (or `key_prefix`) and deleted afterwards. With `client_per_session`, each
    concurrent client has an AsyncClient (and connection) of its own instead of sharing one pool.
    """
    prefix = key_prefix or f"svcbench{uuid.uuid4().hex[:8]}"
    texts = Texts.of_size(message_bytes)
    pool = max((*clients, 1))
    async with AsyncExitStack() as stack:  # unwinds in reverse: sessions, client, store, service, server
        live_url = stack.enter_context(bench_server(url))
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="turnstate-svcbench-"))
        # No rate limit: the bench measures capacity.
        env = {"TURNSTATE_REDIS_URL": live_url, "TURNSTATE_KEY_PREFIX": prefix, "TURNSTATE_AUTH": "local",
               "TURNSTATE_MEMORY": "false", "TURNSTATE_DATA_DIR": tmp, "TURNSTATE_RATE_LIMIT": "none"}  # fmt: skip
        service = await asyncio.to_thread(ServiceProcess, Path(tmp), clean=False, **env)
        stack.push_async_callback(asyncio.to_thread, service.stop)
        store = await stack.enter_async_context(
            await open_store(live_url, settings=Settings(key_prefix=prefix, memory=False))
        )
        http = await stack.enter_async_context(http_client(service.url, pool))
        chat = Chat(store, OfflineModel(), system_prompt=store.settings.system_prompt)
        sessions: list[Turns] = [
            LibraryTurns(chat, "library", texts),
            ServiceTurns(http, "service-json", texts),
            ServiceTurns(http, "service-sse", texts, stream=True),
        ]
        stack.push_async_callback(delete_sessions, store, sessions)
        library, json_turns, sse_turns = tallies = [Tally() for _ in sessions]
        meter, loads = CpuMeter(service, store), []
        await interleaved(list(zip(sessions, tallies, strict=True)), meter, turns=turns, blocks=blocks, warmup=warmup)
        for count in clients:
            async with AsyncExitStack() as own:
                if client_per_session:
                    pools = [await own.enter_async_context(http_client(service.url, 1)) for _ in range(count)]
                else:
                    pools = [http] * count
                level: list[Turns] = [ServiceTurns(pools[i], f"load{count}-{i}", texts) for i in range(count)]
                sessions += level
                loads.append(await load(level, meter, warmup=warmup, seconds=seconds, max_turns=max_turns))
        server = await server_version(store.client)
    return ServiceBenchResult(
        library=library.timing(),
        service=json_turns.timing(),
        streaming=sse_turns.timing(),
        inside=timing(json_turns.inside),
        loads=tuple(loads),
        turns=turns,
        blocks=blocks,
        warmup=warmup,
        seconds=seconds,
        max_turns=max_turns,
        message_bytes=message_bytes,
        client_per_session=client_per_session,
        server=server,
        machine=machine(),
    )
