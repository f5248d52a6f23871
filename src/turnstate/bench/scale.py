"""Many processes on one Redis: a bounded load through several services and workers, then a check of every session.

On one Redis (embedded Valkey unless a URL is given) and one PostgreSQL (embedded unless
TURNSTATE_DATABASE_URL is set), it starts `services` `turnstate serve` processes and `workers`
`turnstate worker` processes, all with the offline model and small summary steps, so the workers
really work. Then S sessions take T turns each over HTTP, all sessions at once (up to
`concurrency`), each request going to the next service round-robin, so consecutive turns of a
session land on different processes. Mixed in, deterministically from a seed:

- races: a few turns of one session sent at once, each to another process (policy `queue`);
- duplicates: a turn sent twice at once, with the same message id, to two processes;
- retries: a turn sent again with its message id once answered, to another process;
- streaming: about half the requests ask for server-sent events, read to the end.

Once the load ends, the bench waits (bounded) for the job queue to drain, and `scale_check`
reads every session from the store and checks it against what the clients were told.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import random
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from docket import Docket

from turnstate.bench.backends import forget_run, fresh, memory_backends
from turnstate.bench.core import server_version
from turnstate.bench.process import ServiceProcess, WorkerProcess
from turnstate.bench.scale_check import Answer, Check, Sent, check_sessions
from turnstate.bench.service import Tally, Timing, TurnFailed, http_client, machine
from turnstate.config import Settings
from turnstate.store import Store, open_store
from turnstate.worker import memory_docket, summarize_session, summary_key

POLL_SECONDS = 0.5
TRANSPORT_RETRIES = 3
WORKERS_READY_SECONDS = 60.0
FACTS = (
    "My name is Ada Lovelace.",
    "I live in Porto.",
    "I love green tea.",
    "I work as a pilot.",
    "I'm allergic to nuts.",
)


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    """The load and the fleet. Shares are of sessions (races) or of turns (duplicates, retries, streaming)."""

    sessions: int = 500
    turns: int = 20
    services: int = 3
    workers: int = 2
    concurrency: int = 500  # sessions in flight at once
    races: float = 0.2  # sessions that send `race_width` turns at once, once
    race_width: int = 3
    duplicates: float = 0.05
    retries: float = 0.05
    streaming: float = 0.5
    window_messages: int = 8
    max_messages: int = 16
    summary_every: int = 4
    drain_seconds: float = 300.0
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Request:
    turn: int
    content: str
    service: int  # index of the service process it goes to
    stream: bool

    @property
    def message_id(self) -> str:
        return f"m{self.turn}"


def text_of(session: int, turn: int) -> str:
    """A user message the checker can recognise, with a first-person fact the workers can extract."""
    return f"Turn {turn} of session {session}. {FACTS[(session + turn) % len(FACTS)]} What do you think?"


def plan(config: ScaleConfig, session: int) -> list[list[Request]]:
    """The session's requests as steps: the requests of one step are sent at once, steps one after another."""
    rng = random.Random(config.seed * 1_000_003 + session)
    width = min(config.race_width, config.turns)
    race_at = rng.randrange(config.turns - width + 1) if rng.random() < config.races and width > 1 else -1
    sent = 0

    def request(turn: int) -> Request:
        nonlocal sent
        sent += 1
        stream = rng.random() < config.streaming
        return Request(turn, text_of(session, turn), (session + sent) % config.services, stream)

    steps: list[list[Request]] = []
    turn = 0
    while turn < config.turns:
        step = [request(t) for t in range(turn, turn + (width if turn == race_at else 1))]
        step += [request(r.turn) for r in list(step) if rng.random() < config.duplicates]
        steps.append(step)
        steps += [[request(r.turn)] for r in step if rng.random() < config.retries]
        turn += len({r.turn for r in step})
    return steps


def events(body: str) -> list[tuple[str, Any]]:
    """The server-sent events of a response read to the end, as (event, data)."""
    out = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields.get("event", ""), json.loads(fields.get("data", "null"))))
    return out


def answer_of(body: Any, streamed: str | None) -> Answer:
    try:
        reply = body["reply"]
        return Answer(
            body["seq"], body["resumed"], reply["seq"], reply["id"], reply["reply_to"], reply["content"], streamed
        )
    except (KeyError, TypeError) as exc:
        raise TurnFailed(f"unexpected answer: {str(body)[:300]}") from exc


async def send(http: httpx.AsyncClient, service: str, session: str, request: Request, load: Load) -> None:
    """One request to `service`; what it was told goes to `load.sent` (answer None: it failed, and this raises).

    A request whose connection broke (the server closing an idle keep-alive connection as it was
    reused, typically) is sent again with the same message id, as a client would: that is what
    the ids are for, and the checker verifies it stored the turn once.
    """
    body = {"message": request.content, "message_id": request.message_id, "stream": request.stream}
    answer = None
    try:
        for attempt in range(TRANSPORT_RETRIES + 1):
            try:
                response = await http.post(f"{service}/v1/sessions/{session}/turns", json=body)
                break
            except httpx.TransportError:
                if attempt == TRANSPORT_RETRIES:
                    raise
                load.resent += 1
        if response.status_code != 200:
            raise TurnFailed(f"HTTP {response.status_code}: {response.text[:300]}")
        if request.stream:
            got = events(response.text)
            if not got or got[-1][0] != "done":
                raise TurnFailed(f"the stream ended with {got[-1:]!r:.300}")
            answer = answer_of(got[-1][1], "".join(data["text"] for kind, data in got if kind == "delta"))
        else:
            answer = answer_of(response.json(), None)
    finally:
        load.sent.append(Sent(session, request.message_id, request.content, answer))


@dataclass
class Load:
    """What the clients sent and were told, and how long each answered request took."""

    sent: list[Sent] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    resent: int = 0  # requests sent again after their connection broke
    seconds: float = 0.0


async def drive(config: ScaleConfig, services: Sequence[str], names: Sequence[str]) -> Load:
    """Every session's plan, `config.concurrency` sessions at a time.

    Each session has an HTTP client of its own, as separate users would: one pool shared by
    hundreds of sessions costs the client CPU that grows with its connections (httpcore's pool
    scans them per request), and the load generator, not the service, became the bottleneck.
    """
    load, gate = Load(), asyncio.Semaphore(config.concurrency)
    most = 2 * config.race_width  # requests of one step at once: a race, each perhaps duplicated

    async def session(n: int) -> None:
        async with gate, http_client("", most) as http:
            for step in plan(config, n):
                await asyncio.gather(
                    *(
                        load.tally.time(functools.partial(send, http, services[r.service], names[n], r, load))
                        for r in step
                    )
                )

    started = time.perf_counter()
    await asyncio.gather(*(session(n) for n in range(len(names))))
    load.seconds = time.perf_counter() - started
    return load


def process_env(run: Settings, data_dir: Path) -> dict[str, str]:
    """The run's settings as the environment of a service or worker process (which reads nothing else).

    The per-tenant rate limit is off: every session is the run's one tenant, and the load is bounded.
    """
    assert run.redis_url is not None and run.database_url is not None
    return {
        "TURNSTATE_REDIS_URL": run.redis_url.get_secret_value(),
        "TURNSTATE_DATABASE_URL": run.database_url.get_secret_value(),
        "TURNSTATE_KEY_PREFIX": run.key_prefix,
        "TURNSTATE_TENANT": run.tenant,
        "TURNSTATE_AUTH": "local",
        "TURNSTATE_MEMORY": "true",
        "TURNSTATE_EMBEDDINGS": "offline",
        "TURNSTATE_WINDOW_MESSAGES": str(run.window_messages),
        "TURNSTATE_MAX_MESSAGES": str(run.max_messages),
        "TURNSTATE_SUMMARY_EVERY": str(run.summary_every),
        "TURNSTATE_DATA_DIR": str(data_dir),
        "TURNSTATE_RATE_LIMIT": "none",
    }


@dataclass
class Fleet:
    services: list[ServiceProcess]
    workers: list[WorkerProcess]

    def check_alive(self, when: str) -> None:
        """Raise if a process has exited, with the end of its log (the log directory goes with the run)."""
        for p in [*self.services, *self.workers]:
            if not p.alive():
                raise RuntimeError(f"{p.log.name} exited {when}: {p.log.read_text()[-2000:]}")


@asynccontextmanager
async def fleet(run: Settings, config: ScaleConfig, docket: Docket, log_dir: Path) -> AsyncIterator[Fleet]:
    """The service and worker processes, started at once; stopped (all of them) when the block ends."""
    env = process_env(run, log_dir)
    async with AsyncExitStack() as stack:
        started = Fleet([], [])
        for n in range(config.workers):
            worker = WorkerProcess(log_dir, str(n), clean=True, **env)
            stack.callback(worker.stop)
            started.workers.append(worker)
        services = await asyncio.gather(
            *(asyncio.to_thread(ServiceProcess, log_dir, clean=True, **env) for _ in range(config.services)),
            return_exceptions=True,
        )
        for service in services:
            if isinstance(service, ServiceProcess):
                stack.callback(service.stop)
                started.services.append(service)
        for failed in services:
            if isinstance(failed, BaseException):
                raise failed
        async with asyncio.timeout(WORKERS_READY_SECONDS):
            while len(await docket.workers()) < config.workers:
                started.check_alive("at start-up")
                await asyncio.sleep(POLL_SECONDS)
        yield started


async def drain(docket: Docket, processes: Fleet, seconds: float) -> float | None:
    """Wait until no memory job is queued or running (twice in a row, for enqueues still in flight).

    Returns the wait, or None if the queue did not drain within `seconds` (the check then shows
    what is left behind).
    """
    started = time.perf_counter()
    idle = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while idle < 2:
                processes.check_alive("during the run")
                snapshot = await docket.snapshot()
                idle = idle + 1 if snapshot.total_tasks == 0 and not snapshot.running else 0
                await asyncio.sleep(POLL_SECONDS)
            return time.perf_counter() - started
    return None


async def summary_jobs(store: Store, docket: Docket, tenant: str) -> int:
    """Summary jobs the workers ran (each commits every step due when it runs), from pydocket's records of
    runs, which it keeps for a while after each job."""
    prefix = docket.runs_key(summary_key(tenant, "", 0))[: -len(":0")]
    return len([key async for key in store.client.scan_iter(match=f"{prefix}*", count=1000)])


@dataclass(frozen=True, slots=True)
class ScaleResult:
    config: ScaleConfig
    check: Check
    latency: Timing  # answered requests; failures counted, never timed
    requests: int
    resent: int  # requests sent again with their message id after their connection broke
    summary_jobs: int  # summary jobs the workers ran
    prefix: str  # of every key the run wrote (and deleted)
    load_seconds: float
    drain_seconds: float | None  # None: the queue had not drained when the bench stopped waiting
    max_ms: float  # the slowest answered request
    elapsed_seconds: float  # everything: start-up, load, drain, check, clean-up
    turns_per_second: float  # acknowledged turns over the load's wall time
    server: str
    machine: str

    @property
    def ok(self) -> bool:
        return self.check.violations == 0


async def run_scale(settings: Settings, config: ScaleConfig) -> ScaleResult:
    """Start the fleet, run the load, drain the workers, check every session, clean up."""
    began = time.perf_counter()
    names = [f"s{n}" for n in range(config.sessions)]
    async with AsyncExitStack() as stack:
        urls = await stack.enter_async_context(memory_backends(settings))
        run = fresh(
            urls,
            window_messages=config.window_messages,
            max_messages=config.max_messages,
            summary_every=config.summary_every,
        )
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="turnstate-scale-")))
        store = await stack.enter_async_context(await open_store(settings=run))
        stack.push_async_callback(forget_run, run, store, None, names)
        docket = await stack.enter_async_context(memory_docket(run, store))
        docket.register(summarize_session)  # so its snapshots can name the queued jobs
        processes = await stack.enter_async_context(fleet(run, config, docket, log_dir))
        load = await drive(config, [s.url for s in processes.services], names)
        waited = await drain(docket, processes, config.drain_seconds)
        check = await check_sessions(store, load.sent)
        jobs = await summary_jobs(store, docket, run.tenant)
        server = await server_version(store.client)
    prefix, acknowledged = run.key_prefix, check.acknowledged
    return ScaleResult(
        config=config,
        check=check,
        latency=load.tally.timing(),
        max_ms=max(load.tally.samples, default=0) / 1e6,
        requests=len(load.sent),
        resent=load.resent,
        summary_jobs=jobs,
        prefix=prefix,
        load_seconds=load.seconds,
        drain_seconds=waited,
        elapsed_seconds=time.perf_counter() - began,
        turns_per_second=acknowledged / load.seconds if load.seconds else 0.0,
        server=server,
        machine=machine(),
    )


def write_json(path: Path, r: ScaleResult) -> None:
    """The result, with its verdict, as JSON: for the record beside the printed table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**dataclasses.asdict(r), "violations": r.check.violations, "ok": r.ok}
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def render_markdown(r: ScaleResult) -> str:
    c, k, t = r.config, r.check, r.latency
    drained = f"not in {c.drain_seconds:g}" if r.drain_seconds is None else f"{r.drain_seconds:.1f}"
    lines = [
        f"{c.sessions} sessions x {c.turns} turns through {c.services} service processes, {c.workers} worker "
        f"processes; window {c.window_messages}, {c.max_messages} kept, a summary every {c.summary_every}; "
        f"{r.server}; {r.machine}.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| sessions checked | {k.sessions} |",
        f"| turns sent (distinct message ids) | {k.turns} |",
        f"| requests (with races, duplicates, retries) | {r.requests} |",
        f"| turns acknowledged | {k.acknowledged} |",
        f"| requests sent again after their connection broke (same message id) | {r.resent} |",
        f"| requests failed | {t.failures} |",
        f"| turns retried (answered more than once) | {k.retried} |",
        f"| messages stored / still held / under the watermarks | {k.stored} / {k.held} / {k.summarized} |",
        f"| lost | {k.lost} |",
        f"| duplicated | {k.duplicated} |",
        f"| misordered | {k.misordered} |",
        f"| mismatched | {k.mismatched} |",
        f"| retries answered differently | {k.retry_mismatches} |",
        f"| streams of a retried turn that showed another reply than the one stored (allowed) | {k.streams_replaced} |",
        f"| summary jobs run by the workers | {r.summary_jobs} |",
        f"| sessions with a summary | {k.summaries} |",
        f"| sessions with a summary step left due | {k.summary_behind} |",
        f"| throughput (acknowledged turns/s) | {r.turns_per_second:.0f} |",
        f"| latency per answered request, p50 / p99 / max (ms) | {t.p50_ms:.1f} / {t.p99_ms:.1f} / {r.max_ms:.1f} |",
        f"| load / queue drained / elapsed (s) | {r.load_seconds:.1f} / {drained} / {r.elapsed_seconds:.1f} |",
    ]
    if t.first_failure:
        lines += ["", f"First failure: {t.first_failure}"]
    if k.problems:
        lines += ["", f"**{k.violations} violations**; the first:", *(f"- {p}" for p in k.problems)]
    return "\n".join(lines)
