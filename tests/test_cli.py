"""The command line, run as a user runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from turnstate import Settings, __version__, connect_sync
from turnstate.cli import app

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str) -> dict[str, str]:
    env = {"TURNSTATE_REDIS_URL": redis_url, "TURNSTATE_KEY_PREFIX": key_prefix, "TURNSTATE_MEMORY": "false"}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TURNSTATE_OPENAI_API_KEY", "TURNSTATE_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_version_and_help() -> None:
    assert runner.invoke(app, ["version"]).stdout.strip() == __version__
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "chat", "history", "delete", "doctor", "demo", "bench"):
        assert command in result.stdout


def test_history_and_delete(cli_env: dict[str, str], session_id: str) -> None:
    with connect_sync(cli_env["TURNSTATE_REDIS_URL"], settings=Settings()) as store:
        turn = store.begin_turn(session_id, "from the library")
        store.finish_turn(turn, "and its reply")
    shown = runner.invoke(app, ["history", session_id])
    assert shown.exit_code == 0
    assert "#1 user: from the library" in shown.stdout and "#2 assistant: and its reply" in shown.stdout
    assert runner.invoke(app, ["delete", session_id]).stdout.strip() == f"deleted {session_id}"
    assert runner.invoke(app, ["delete", session_id]).stdout.strip() == f"no session {session_id}"


def test_bad_input_is_one_clear_line(cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["history", "bad{id"])
    assert result.exit_code == 1
    assert "error: invalid session id" in result.stdout
    assert "Traceback" not in result.stdout


def test_doctor_checks_store_and_model(cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.stdout
    assert "ok   state store" in result.stdout and "ok   model: offline answered" in result.stdout


def test_doctor_checks_postgresql_and_the_embedder_when_memory_is_on(
    cli_env: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNSTATE_MEMORY", "true")
    monkeypatch.setenv("TURNSTATE_DATABASE_URL", database_url)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.stdout
    assert "ok   embedder:" in result.stdout and "ok   PostgreSQL:" in result.stdout
    monkeypatch.setenv("TURNSTATE_DATABASE_URL", "postgresql://bob:hunter2@127.0.0.1:1/db?connect_timeout=2")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1 and "FAIL PostgreSQL" in result.stdout and "hunter2" not in result.stdout


def test_doctor_reports_an_unreachable_store_without_credentials(cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["doctor", "--redis-url", "redis://bob:hunter2@127.0.0.1:1/0"])
    assert result.exit_code == 1
    assert "FAIL state store" in result.stdout and "127.0.0.1:1" in result.stdout
    assert "hunter2" not in result.stdout


def test_interactive_chat_streams_and_shows_the_window(cli_env: dict[str, str], session_id: str) -> None:
    env = {**os.environ, **cli_env, "COLUMNS": "200"}
    script = "Hello, terminal!\nSecond line\n/window\n/history\n/quit\n"
    done = subprocess.run(
        [sys.executable, "-m", "turnstate", "chat", "--session", session_id],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    out = done.stdout
    assert "offline model" in out and "Hello, terminal!" in out
    assert "window of turn #3: 3 messages" in out
    assert "#4 assistant:" in out


def test_bench_core_runs_from_the_cli(cli_env: dict[str, Any], redis_url: str) -> None:
    result = runner.invoke(app, ["bench", "core", "--redis-url", redis_url, "--turns", "2", "--blocks", "3"])
    assert result.exit_code == 0, result.stdout
    assert "turnstate / bare, p50" in result.stdout and "2 EVALSHA" in result.stdout


def test_memory_commands(cli_env: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNSTATE_DATABASE_URL", database_url)
    tenant = cli_env["TURNSTATE_KEY_PREFIX"]

    async def plant() -> None:
        from turnstate.memory import OfflineEmbedder, open_fact_store

        embedder = OfflineEmbedder()
        async with await open_fact_store(Settings(), embedder.dim, model=embedder.name) as facts:
            for key, text in [("user.city", "The user lives in Oslo."), ("user.pet", "The user has a cat.")]:
                vector = (await embedder.embed_passages([text]))[0]
                await facts.remember(tenant, "cli-user", key, text, vector)
        await embedder.aclose()

    asyncio.run(plant())
    listed = runner.invoke(app, ["memory", "list", "cli-user", "--tenant", tenant])
    assert listed.exit_code == 0 and "user.city" in listed.stdout and "user.pet" in listed.stdout
    found = runner.invoke(app, ["memory", "search", "cli-user", "where do I live?", "--tenant", tenant, "--k", "1"])
    assert "The user lives in Oslo." in found.stdout and "cat" not in found.stdout
    fact_id = listed.stdout.split()[0].lstrip("#")
    assert (
        f"forgot fact #{fact_id}"
        in runner.invoke(app, ["memory", "delete", "cli-user", "--tenant", tenant, "--fact", fact_id]).stdout
    )
    assert "forgot 1 facts" in runner.invoke(app, ["memory", "delete", "cli-user", "--tenant", tenant]).stdout
    assert "no facts about cli-user" in runner.invoke(app, ["memory", "list", "cli-user", "--tenant", tenant]).stdout


def test_the_worker_logs_the_summaries_it_commits(
    cli_env: dict[str, str], database_url: str, key_prefix: str, tmp_path: Any
) -> None:
    env = {
        **os.environ,
        **cli_env,
        "TURNSTATE_MEMORY": "true",
        "TURNSTATE_DATABASE_URL": database_url,
        "TURNSTATE_TENANT": key_prefix,
        "TURNSTATE_DATA_DIR": str(tmp_path),
        "TURNSTATE_WINDOW_MESSAGES": "2",
        "TURNSTATE_MAX_MESSAGES": "4",
        "TURNSTATE_SUMMARY_EVERY": "2",
    }
    settings = Settings(
        redis_url=cli_env["TURNSTATE_REDIS_URL"], key_prefix=key_prefix, tenant=key_prefix, window_messages=2,
        max_messages=4, summary_every=2, database_url=database_url,
    )  # fmt: skip

    async def leave_a_step_due() -> None:
        from turnstate.store import open_store
        from turnstate.worker import enqueue_summary, memory_docket

        async with await open_store(settings=settings) as store, memory_docket(settings, store) as docket:
            await store.append_many("logged", [("user", f"line {n}") for n in range(5)])
            await enqueue_summary(docket, key_prefix, "logged", "ada", 0, 0)

    asyncio.run(leave_a_step_due())
    done = subprocess.run(
        [sys.executable, "-m", "turnstate", "worker", "--until-finished"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"INFO turnstate.worker: summary of {key_prefix}/logged up to 3: committed" in done.stderr, done.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "turnstate", "worker", "--until-finished"],
        env={**env, "TURNSTATE_LOG_LEVEL": "WARNING"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "INFO turnstate" not in quiet.stderr
