"""Real `turnstate` processes (`serve` on a free loopback port, `worker`), for the benches and the API tests.

Separate processes, not an app mounted in the caller's event loop: the HTTP layer and the worker
are measured and tested as deployed, each with its own interpreter, event loop and connection pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from turnstate.servers import free_port

MODEL_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TURNSTATE_OPENAI_API_KEY", "TURNSTATE_OPENAI_BASE_URL")
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


class TurnstateProcess:
    """`python -m turnstate <args>`, its output in `log`; stopped with SIGTERM.

    The caller's model variables are dropped, so the offline model answers unless `env` names one.
    With `clean`, so are its other `TURNSTATE_*` variables: only `env` configures the process.
    """

    def __init__(self, args: Sequence[str], log: Path, *, clean: bool = True, **env: str) -> None:
        inherited = {
            k: v for k, v in os.environ.items() if k not in MODEL_ENV and not (clean and k.startswith("TURNSTATE_"))
        }
        self.log = log
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "turnstate", *args],
                env={**inherited, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float | None:
        """CPU time the process has used so far (user + system); None where /proc is not available."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        """Stop the process; return what it logged."""
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text()


class ServiceProcess(TurnstateProcess):
    """`python -m turnstate serve` on 127.0.0.1, ready once /readyz answers 200."""

    def __init__(self, log_dir: Path, *, clean: bool = True, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__(args, log_dir / f"service-{self.port}.log", clean=clean, **env)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the service exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the service did not become ready: {self.log.read_text()[-2000:]}")


class WorkerProcess(TurnstateProcess):
    """`python -m turnstate worker`: memory jobs from the queue on the Redis `env` names."""

    def __init__(self, log_dir: Path, name: str, *, clean: bool = True, **env: str) -> None:
        super().__init__(["worker"], log_dir / f"worker-{name}.log", clean=clean, **env)
