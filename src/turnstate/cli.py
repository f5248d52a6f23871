"""The `turnstate` command line."""

from __future__ import annotations

import asyncio

import typer

from turnstate import __version__

app = typer.Typer(help="turnstate: LLM conversation state in Redis.", no_args_is_help=True, add_completion=False)


@app.command()
def demo() -> None:
    """Run a scripted conversation and a 16-way race on the embedded Valkey (or TURNSTATE_REDIS_URL)."""
    from turnstate.demo import run_demo

    asyncio.run(run_demo())


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
