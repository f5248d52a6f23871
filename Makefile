# The obvious targets. `make demo` and `make test` install everything they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve demo test lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install  ## the chat service on http://127.0.0.1:8000 over an embedded Valkey (TURNSTATE_* to configure)
	$(BIN)/turnstate serve

demo: install  ## a scripted conversation on an embedded Valkey: window, archive, race vs JSON blob
	$(BIN)/turnstate demo

test: install  ## the test suite (embedded Valkey; TURNSTATE_TEST_REDIS_URL=... for another server)
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: install
	$(BIN)/mypy

check: test lint typecheck

bench: install  ## turn latency: turnstate vs a bare article-style turn, and vs history length
	$(BIN)/turnstate bench core

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
