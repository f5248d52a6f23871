"""The embedded Valkey: starts, persists across restarts, is shared by processes, stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import turnstate
from turnstate.servers import EmbeddedPostgres, EmbeddedValkey, _answers_ping, valkey_binary


async def test_connect_without_a_url_starts_an_embedded_valkey_that_keeps_data(tmp_path: Path) -> None:
    os.environ.pop("TURNSTATE_REDIS_URL", None)
    settings = turnstate.Settings(data_dir=tmp_path)
    async with turnstate.connect(settings=settings) as store:
        turn = await store.begin_turn("persisted", "remember me")
        await store.finish_turn(turn, "I will")
        port = store._embedded.port if store._embedded else None
    assert port is not None and not _answers_ping(port)  # stopped on close
    async with turnstate.connect(settings=settings) as store:
        assert [m.content for m in await store.history("persisted")] == ["remember me", "I will"]


def test_a_second_owner_attaches_to_the_running_server(tmp_path: Path) -> None:
    first, second = EmbeddedValkey(tmp_path), EmbeddedValkey(tmp_path)
    try:
        url = first.start()
        assert second.start() == url
        assert first.owner and not second.owner
        second.stop()  # not the owner: the server keeps running
        assert first.port is not None and _answers_ping(first.port)
    finally:
        first.stop()
    assert not _answers_ping(first.port)


def test_a_server_orphaned_by_a_killed_owner_is_replaced(tmp_path: Path) -> None:
    orphan = EmbeddedValkey(tmp_path)
    orphan.start()
    assert orphan._process is not None and orphan._lock is not None
    orphan._lock.close()  # the owner died: its lock is gone, its server still runs
    orphan._lock, process = None, orphan._process
    successor = EmbeddedValkey(tmp_path)
    try:
        successor.start()
        assert process.wait(timeout=10) is not None
        assert successor.owner and successor.port != orphan.port
    finally:
        successor.stop()


def test_connect_over_a_unix_socket(tmp_path: Path, key_prefix: str) -> None:
    socket_path = tmp_path / "valkey.sock"
    args = [str(valkey_binary()), "--port", "0", "--unixsocket", str(socket_path), "--save", "", "--dir", str(tmp_path)]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        settings = turnstate.Settings(data_dir=tmp_path, key_prefix=key_prefix)
        with turnstate.connect_sync(f"unix://{socket_path}", settings=settings) as store:
            turn = store.begin_turn("over-unix", "hello")
            assert store.finish_turn(turn, "hi").seq == 2
            assert store.store.address == f"unix://{socket_path}"
    finally:
        server.terminate()
        server.wait()


def test_embedded_postgres_is_shared_in_a_process_and_stops_with_its_last_user(tmp_path: Path) -> None:
    first, second = EmbeddedPostgres(tmp_path / "pg"), EmbeddedPostgres(tmp_path / "pg")
    try:
        url = first.start()
        assert second.start() == url
        first.stop()  # the second still uses it
        assert (tmp_path / "pg" / "postmaster.pid").exists()
    finally:
        first.stop()
        second.stop()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
    assert (tmp_path / "pg" / "PG_VERSION").exists()  # persistent: the data stays


def test_embedded_postgres_is_not_kept_running_by_a_killed_process(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    code = (
        "import sys; from pathlib import Path; from turnstate.servers import EmbeddedPostgres; "
        "print(EmbeddedPostgres(Path(sys.argv[1])).start(), flush=True); sys.stdin.read()"
    )
    args = [sys.executable, "-c", code, str(data)]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as killed:
        assert killed.stdout is not None
        url = killed.stdout.readline().strip()
        killed.kill()  # no atexit: its registration with pgserver stays behind
    survivor = EmbeddedPostgres(data)
    assert survivor.start() == url  # attached to the server the killed process started
    survivor.stop()
    assert not (data / "postmaster.pid").exists()
