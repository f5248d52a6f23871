# The obvious targets. `make demo` and `make test` install everything they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve demo test test-cluster lint typecheck check bench bench-short clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install  ## the chat service on http://127.0.0.1:8000: embedded Valkey and PostgreSQL, memory worker inside
	$(BIN)/turnstate serve --worker

demo: install  ## a scripted conversation on an embedded Valkey: window, archive, race vs JSON blob
	$(BIN)/turnstate demo

test: install  ## the test suite (embedded Valkey; TURNSTATE_TEST_REDIS_URL=... for another server)
	$(BIN)/pytest

# The core's tests (turn protocol, edits, races, summaries, sync facade, adapters) on a cluster.
CORE_TESTS := tests/test_store.py tests/test_store_edits.py tests/test_concurrency.py tests/test_summaries.py \
	tests/test_sync.py tests/test_validation.py tests/test_integrations_openai_agents.py \
	tests/test_integrations_langchain.py tests/test_integrations_llamaindex.py

test-cluster: install  ## the core's tests again on a local 3-master Redis Cluster of embedded Valkeys
	TURNSTATE_TEST_REDIS_URL=cluster $(BIN)/pytest $(CORE_TESTS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: install
	$(BIN)/mypy

check: test lint typecheck

bench: install  ## the article's patterns vs turnstate (report/, docs/benchmarks.md), then turn latency (docs/performance.md)
	$(BIN)/turnstate bench run
	$(BIN)/turnstate bench core

bench-short: install  ## the benchmark's regression check, in seconds: two round trips per turn, bytes flat in history
	$(BIN)/turnstate bench run --short --report-dir $(or $(REPORT),report)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
