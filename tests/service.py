"""The service process the API tests talk to: API keys required, memory off unless a fixture turns it on."""

from __future__ import annotations

import json
from pathlib import Path

from turnstate.bench.process import ServiceProcess as _ServiceProcess

KEYS = {"key-acme": "acme", "key-globex": "globex"}


def memory_env(database_url: str) -> dict[str, str]:
    """Long-term memory on, its worker in-process, small windows so that summaries come soon."""
    return {
        "TURNSTATE_MEMORY": "true",
        "TURNSTATE_DATABASE_URL": database_url,
        "TURNSTATE_WORKER_IN_SERVICE": "true",
        "TURNSTATE_WINDOW_MESSAGES": "4",
        "TURNSTATE_MAX_MESSAGES": "6",
        "TURNSTATE_SUMMARY_EVERY": "2",
        "TURNSTATE_RECALL_BUDGET_SECONDS": "5",
    }


class ServiceProcess(_ServiceProcess):
    """A real service on a real port and the test server, configured only by the test's `env`."""

    def __init__(self, redis_url: str, key_prefix: str, log_dir: Path, **env: str) -> None:
        settings = {
            "TURNSTATE_REDIS_URL": redis_url,
            "TURNSTATE_KEY_PREFIX": key_prefix,
            "TURNSTATE_AUTH": "keys",
            "TURNSTATE_API_KEYS": json.dumps(KEYS),
            "TURNSTATE_DATA_DIR": str(log_dir),
            "TURNSTATE_MEMORY": "false",
            # test_api_ratelimit.py tests the limit; here it would only make a fast test's pace matter
            "TURNSTATE_RATE_LIMIT": "none",
        }
        super().__init__(log_dir, **{**settings, **env})
