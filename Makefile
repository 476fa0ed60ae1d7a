# The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := plugins/weaver_mindsdb plugins/weaver_neo4j plugins/weaver_pg plugins/weaver_redis_guard
HOST ?= 127.0.0.1
PORT ?= 8000
LOOPS ?= 2

.PHONY: run install install-core test test-core lint bench services-up services-down \
        services-status integration-external-exit-gate clean

# Serve on the embedded defaults: nothing to install but the package itself.
run: install-core
	$(BIN)/weaver serve --host $(HOST) --port $(PORT) --demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install-core: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	scripts/browser.sh

# Everything: real services up, then every suite, live ones included.
test: install
	scripts/services.sh up
	eval "$$(scripts/services.sh env)" && WEAVER_RUN_E2E=1 $(BIN)/pytest -q -rs

# The core and the embedded defaults only: no server needed.
test-core: install
	$(BIN)/pytest -q tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for plugin in $(PLUGINS); do (cd $$plugin && $(CURDIR)/$(BIN)/mypy) || exit 1; done

bench: install
	scripts/services.sh up
	eval "$$(scripts/services.sh env)" && for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

services-up:
	scripts/services.sh up

services-down:
	scripts/services.sh down

services-status:
	scripts/services.sh status

# The deployment document's exit gate: the external end-to-end suite, LOOPS times, no skips.
integration-external-exit-gate: install
	$(BIN)/python scripts/weaver_external_exit_gate.py --loops $(LOOPS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
