"""A real turnstate service process on a real port, for the API tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from turnstate.servers import free_port

KEYS = {"key-acme": "acme", "key-globex": "globex"}
MODEL_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TURNSTATE_OPENAI_API_KEY", "TURNSTATE_OPENAI_BASE_URL")


class ServiceProcess:
    """`python -m turnstate serve` with the given environment; stopped with SIGTERM."""

    def __init__(self, redis_url: str, key_prefix: str, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("TURNSTATE_") and k not in MODEL_ENV}
        base.update(
            TURNSTATE_REDIS_URL=redis_url,
            TURNSTATE_KEY_PREFIX=key_prefix,
            TURNSTATE_AUTH="keys",
            TURNSTATE_API_KEYS=json.dumps(KEYS),
            TURNSTATE_DATA_DIR=str(log_dir),
            TURNSTATE_MEMORY="false",
        )
        base.update(env)
        self.log = log_dir / f"service-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "turnstate", "serve", "--port", str(self.port)],
                env=base,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the service did not become ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> str:
        """Stop the service; return what it logged."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text()
