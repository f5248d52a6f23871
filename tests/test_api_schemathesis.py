"""schemathesis against the service's own OpenAPI document: generated requests, valid and invalid,
to every operation of the in-process app (offline model, real Valkey and PostgreSQL). No answer
may be a 5xx, every status must be declared, every body must match its declared schema.

The operations are driven one by one with Hypothesis (derandomized, so CI replays the same
requests) instead of through `schema.parametrize()`: its lazy fixture loader does not run under
pytest 9.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service import KEYS
from turnstate.api import create_app
from turnstate.config import Settings

ACME = {"Authorization": "Bearer key-acme"}
EXAMPLES = 15  # per operation and mode: 12 operations x 2 modes in well under a minute


def test_the_api_keeps_its_openapi_contract(redis_url: str, database_url: str, key_prefix: str, tmp_path: Path) -> None:
    app = create_app(
        Settings(
            redis_url=redis_url,  # type: ignore[arg-type]
            database_url=database_url,  # type: ignore[arg-type]
            key_prefix=key_prefix,
            data_dir=tmp_path,
            auth="keys",
            api_keys=json.dumps(KEYS),  # type: ignore[arg-type]
            rate_limit="none",
            queue_wait_seconds=1,
        )
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := conformance_failure(operation, mode))
    ]
    assert not failures, "\n\n".join(failures)


def conformance_failure(operation: Any, mode: GenerationMode) -> str | None:
    """What schemathesis found wrong with `operation` on requests generated in `mode`, if anything."""
    # OpenAI's request shape cannot say "X-Session-Id or `user`" nor "a user message among
    # `messages`": schema-valid requests without them are rightly refused (400, 422).
    excluded = [positive_data_acceptance] if operation.path == "/v1/chat/completions" else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    def conforms(case: Any) -> None:
        case.call_and_validate(headers=ACME, excluded_checks=excluded)

    try:
        conforms()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE  # nothing in this operation can be made invalid
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups its failures
        return f"{operation.label} ({mode}): {exc}"
    return None
