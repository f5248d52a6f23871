"""The `turnstate` command line: serve, chat, history, delete, doctor, demo, bench.

Every option can also be set by the environment variable named in its help (the same
`TURNSTATE_*` variables the library reads).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from turnstate import __version__
from turnstate.config import Settings
from turnstate.errors import TurnstateError

app = typer.Typer(help="turnstate: LLM conversation state in Redis.", no_args_is_help=True, add_completion=False)
console = Console()

SessionArg = Annotated[str, typer.Argument(help="session id")]
TenantOpt = Annotated[str | None, typer.Option(help="tenant id", envvar="TURNSTATE_TENANT")]
UrlOpt = Annotated[
    str | None, typer.Option("--redis-url", help="unset: an embedded Valkey", envvar="TURNSTATE_REDIS_URL")
]


def settings_with(**overrides: object) -> Settings:
    """Settings from the environment, with the options given on the command line on top."""
    values = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)  # type: ignore[arg-type]


def log_to_stderr(settings: Settings) -> None:
    """Show turnstate's own log lines (summaries committed, jobs retried, recall skipped) on stderr."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("turnstate").setLevel(settings.log_level)


def run(coro: object) -> None:
    """Run a command's coroutine; a turnstate error is one red line and exit code 1, not a traceback."""
    try:
        asyncio.run(coro)  # type: ignore[arg-type]
    except TurnstateError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind", envvar="TURNSTATE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", envvar="TURNSTATE_PORT")] = 8000,
    redis_url: UrlOpt = None,
    worker: Annotated[
        bool | None,
        typer.Option("--worker/--no-worker", help="run the memory worker in this process too", show_default=False),
    ] = None,
) -> None:
    """Run the HTTP service (API keys required if any is configured or unless bound to a loopback address)."""
    import uvicorn

    from turnstate.api import create_app

    settings = settings_with(host=host, port=port, redis_url=redis_url, worker_in_service=worker)
    log_to_stderr(settings)
    base = f"http://{host}:{port}"
    console.print(f"turnstate {__version__} on {base}  (OpenAPI: {base}/docs)")
    console.print(
        f"  try: curl -s {base}/v1/sessions/hello/turns -H 'content-type: application/json' "
        '-d \'{"message": "Hi there!"}\''
    )
    uvicorn.run(create_app(settings, bind=host), host=host, port=port, log_level="info", access_log=False)


@app.command()
def chat(
    session: Annotated[str, typer.Option(help="session id")] = "terminal",
    tenant: TenantOpt = None,
    redis_url: UrlOpt = None,
) -> None:
    """An interactive chat in the terminal; /window, /summary, /history, /quit."""
    from turnstate.terminal import chat_loop

    run(chat_loop(settings_with(tenant=tenant, redis_url=redis_url), session, console))


@app.command()
def history(session: SessionArg, tenant: TenantOpt = None, redis_url: UrlOpt = None) -> None:
    """Print every message a session still holds, oldest first."""
    from turnstate.store import open_store

    async def show() -> None:
        async with await open_store(settings=settings_with(redis_url=redis_url)) as store:
            for m in await store.history(session, tenant=tenant):
                console.print(f"[dim]#{m.seq}[/dim] [bold]{m.role}[/bold]: {m.content}", markup=True, highlight=False)

    run(show())


@app.command()
def delete(session: SessionArg, tenant: TenantOpt = None, redis_url: UrlOpt = None) -> None:
    """Delete a session and everything it holds."""
    from turnstate.store import open_store

    async def remove() -> None:
        async with await open_store(settings=settings_with(redis_url=redis_url)) as store:
            found = await store.delete(session, tenant=tenant)
            console.print(f"deleted {session}" if found else f"no session {session}")

    run(remove())


@app.command()
def worker(
    redis_url: UrlOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, help="jobs at once", envvar="TURNSTATE_WORKER_CONCURRENCY")] = 4,
    until_finished: Annotated[bool, typer.Option(help="stop once no job is left")] = False,
) -> None:
    """Run the memory worker: summaries and facts for sessions whose messages left the window."""
    from turnstate.worker import run_worker

    settings = settings_with(redis_url=redis_url, worker_concurrency=concurrency)
    log_to_stderr(settings)
    console.print(f"turnstate memory worker ({concurrency} at once); Ctrl-C stops it")
    run(run_worker(settings, until_finished=until_finished))


memory_app = typer.Typer(help="Long-term memory: the facts kept about a user.")
app.add_typer(memory_app, name="memory")
UserArg = Annotated[str, typer.Argument(help="user id")]


@memory_app.command("list")
def memory_list(
    user: UserArg, tenant: TenantOpt = None, history: Annotated[bool, typer.Option(help="superseded too")] = False
) -> None:
    """The facts kept about a user, oldest first."""
    from turnstate.memory.tools import list_facts

    run(list_facts(settings_with(), console, tenant, user, include_superseded=history))


@memory_app.command("search")
def memory_search(user: UserArg, query: str, tenant: TenantOpt = None, k: int = 5) -> None:
    """The user's facts closest in meaning to QUERY."""
    from turnstate.memory.tools import search_facts

    run(search_facts(settings_with(), console, tenant, user, query, k))


@memory_app.command("delete")
def memory_delete(
    user: UserArg, tenant: TenantOpt = None, fact: Annotated[int | None, typer.Option(help="one fact id")] = None
) -> None:
    """Forget one fact of a user (--fact ID), or everything about the user."""
    from turnstate.memory.tools import delete_facts

    run(delete_facts(settings_with(), console, tenant, user, fact))


@app.command()
def doctor(redis_url: UrlOpt = None) -> None:
    """Check the configuration, the state store and the model endpoint."""
    from turnstate.doctor import diagnose

    run(diagnose(settings_with(redis_url=redis_url), console))


@app.command()
def demo() -> None:
    """A scripted conversation and a 16-way race on the embedded Valkey (or TURNSTATE_REDIS_URL)."""
    from turnstate.demo import run_demo

    run(run_demo())


bench_app = typer.Typer(help="Benchmarks (figures are ratios within one run; absolute times vary).")
app.add_typer(bench_app, name="bench")


@bench_app.command("core")
def bench_core(
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="unset: a fresh embedded Valkey")] = None,
    turns: Annotated[int, typer.Option(min=1, help="turns per variant per block")] = 50,
    blocks: Annotated[int, typer.Option(min=1, help="blocks, variants interleaved")] = 20,
    long_history: Annotated[int, typer.Option(min=50, help="messages in the long conversation")] = 5000,
) -> None:
    """Turn latency: turnstate vs a bare article-style turn, and 5,000 vs 50 messages of history."""
    from turnstate.bench.core import render_markdown, run_core_bench

    async def measure() -> None:
        result = await run_core_bench(redis_url, turns=turns, blocks=blocks, long_history=long_history)
        typer.echo(render_markdown(result))

    run(measure())


@bench_app.command("service")
def bench_service(
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="unset: a fresh embedded Valkey")] = None,
    turns: Annotated[int, typer.Option(min=1, help="turns per variant per block")] = 50,
    blocks: Annotated[int, typer.Option(min=1, help="blocks, variants interleaved")] = 20,
    clients: Annotated[str, typer.Option(help="concurrent clients, one session each")] = "1,32,256",
    seconds: Annotated[float, typer.Option(min=0.1, help="at most this long per concurrency level")] = 10.0,
    max_turns: Annotated[int, typer.Option(min=1, help="at most this many turns per client per level")] = 2000,
    client_per_session: Annotated[
        bool, typer.Option(help="an httpx client per concurrent client, not one pool for all")
    ] = False,
) -> None:
    """The HTTP service's overhead per turn against the library, and its throughput at N clients."""
    from turnstate.bench.service import run_service_bench
    from turnstate.bench.service_report import render_markdown

    levels = tuple(int(n) for n in _numbers(clients) or ())

    async def measure() -> None:
        result = await run_service_bench(
            redis_url,
            turns=turns,
            blocks=blocks,
            clients=levels,
            seconds=seconds,
            max_turns=max_turns,
            client_per_session=client_per_session,
        )
        typer.echo(render_markdown(result))

    run(measure())


def _numbers(text: str | None) -> tuple[float, ...] | None:
    """A comma-separated list of numbers from an option, or None when the option was not given."""
    try:
        return None if text is None else tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None


@bench_app.command("run")
def bench_run(
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="unset: a fresh embedded Valkey")] = None,
    report_dir: Annotated[Path, typer.Option(help="where bench.json, bench.md and the charts go")] = Path("report"),
    short: Annotated[bool, typer.Option("--short", help="seconds, not minutes: the CI regression check")] = False,
    histories: Annotated[str | None, typer.Option(help="history lengths (default 50,500,5000)")] = None,
    delays: Annotated[str | None, typer.Option(help="added round-trip times in ms (default 1,20)")] = None,
    sessions: Annotated[str | None, typer.Option(help="concurrent sessions (default 1,8,64)")] = None,
    price_per_100k: Annotated[
        float | None, typer.Option(help="assumed $ per 100,000 commands (default 0.20: Upstash pay-as-you-go)")
    ] = None,
    key_prefix: Annotated[str | None, typer.Option(help="prefix of the bench's keys (default: a fresh one)")] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="PostgreSQL+pgvector for recall (unset: embedded, or --short skips it)"),
    ] = None,
) -> None:
    """The article's four patterns and turnstate on one workload; exit 1 if a regression check fails."""
    from turnstate.bench.report import run_and_report
    from turnstate.bench.results import BenchConfig

    overrides: dict[str, object] = {} if price_per_100k is None else {"price_per_100k": price_per_100k}
    for name, value in (("histories", histories), ("delays_ms", delays), ("sessions", sessions)):
        if (parsed := _numbers(value)) is not None:
            overrides[name] = parsed if name == "delays_ms" else tuple(int(v) for v in parsed)
    config = BenchConfig.short_run(**overrides) if short else BenchConfig.full(**overrides)

    async def measure() -> None:
        result = await run_and_report(
            redis_url, config, report_dir, console, key_prefix=key_prefix, database_url=database_url
        )
        if not result.ok:
            console.print("[red]a regression check failed[/red]")
            raise typer.Exit(1)

    run(measure())


BenchUrlOpt = Annotated[
    str | None, typer.Option("--redis-url", help="unset: a fresh embedded Valkey", envvar="TURNSTATE_REDIS_URL")
]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="also write the result as JSON to this file")]


@bench_app.command("memory-eval")
def bench_memory_eval(
    redis_url: BenchUrlOpt = None,
    users: Annotated[str | None, typer.Option(help="comma-separated user ids of the data set (default: all)")] = None,
    json_path: JsonOpt = None,
) -> None:
    """Memory quality: planted facts through the real pipeline, then recall@k (TURNSTATE_DATABASE_URL or embedded)."""
    from turnstate.bench.memory_eval import eval_report

    async def evaluate() -> None:
        names = [u.strip() for u in (users or "").split(",") if u.strip()]
        typer.echo(await eval_report(settings_with(redis_url=redis_url), names, json_path))

    run(evaluate())


@bench_app.command("memory")
def bench_memory(
    redis_url: BenchUrlOpt = None,
    sizes: Annotated[str, typer.Option(help="stored facts for the recall latency")] = "10000,100000",
    queries: Annotated[int, typer.Option(min=1, help="timed recalls per kind of user")] = 300,
    sessions: Annotated[int, typer.Option(min=1, help="due sessions one worker drains")] = 100,
    rates: Annotated[str, typer.Option(help="turns per second offered while the lag is measured")] = "5,10",
    seconds: Annotated[float, typer.Option(min=0, help="measured period of the lag (0: skip it)")] = 60.0,
    json_path: JsonOpt = None,
) -> None:
    """Memory performance: recall latency at scale, summaries per second per worker, summary lag under load."""
    from turnstate.bench.memory_bench import MemoryBenchConfig, bench_report

    counts = tuple(int(n) for n in _numbers(sizes) or ())
    loads = _numbers(rates) or ()
    config = MemoryBenchConfig(sizes=counts, queries=queries, sessions=sessions, rates=loads, seconds=seconds)

    async def measure() -> None:
        typer.echo(await bench_report(settings_with(redis_url=redis_url), config, json_path))

    run(measure())


@bench_app.command("scale")
def bench_scale(
    redis_url: BenchUrlOpt = None,
    sessions: Annotated[int, typer.Option(min=1, help="sessions, all talking at once")] = 500,
    turns: Annotated[int, typer.Option(min=1, help="turns per session")] = 20,
    services: Annotated[int, typer.Option(min=1, help="`turnstate serve` processes")] = 3,
    workers: Annotated[int, typer.Option(min=1, help="`turnstate worker` processes")] = 2,
    concurrency: Annotated[int | None, typer.Option(min=1, help="sessions in flight at once (default: all)")] = None,
    seed: Annotated[int, typer.Option(help="chooses the races, duplicates, retries and streamed requests")] = 1,
    json_path: JsonOpt = None,
) -> None:
    """Many processes on one Redis: S sessions x T turns through several services and workers, then every
    session checked (TURNSTATE_DATABASE_URL or an embedded PostgreSQL); exit 1 if an invariant failed."""
    from turnstate.bench.scale import ScaleConfig, render_markdown, run_scale, write_json

    config = ScaleConfig(
        sessions=sessions, turns=turns, services=services, workers=workers, concurrency=concurrency or sessions,
        seed=seed,
    )  # fmt: skip

    async def measure() -> None:
        result = await run_scale(settings_with(redis_url=redis_url), config)
        typer.echo(render_markdown(result))
        if json_path is not None:
            write_json(json_path, result)
        if not result.ok:
            raise typer.Exit(1)

    run(measure())


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
