# The README's two commands are `make run` and `make test`.
# Any Python 3.11 or newer will do: `make run PYTHON=python3.12`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := plugins/weaver_mindsdb plugins/weaver_neo4j plugins/weaver_pg plugins/weaver_redis_guard \
           plugins/weaver_trino
EXAMPLES := examples/weaver_pg_guard
# The dev services package behind scripts/services.sh (its own distribution).
SERVICES_PKG := scripts
HOST ?= 127.0.0.1
PORT ?= 8000
LOOPS ?= 2
# Examples per operation and phase for `make fuzz`: 40 takes about 80 s here, schemathesis's
# default of 100 about five minutes (make fuzz FUZZ_EXAMPLES=100).
FUZZ_EXAMPLES ?= 40
# Installs happen when a pyproject.toml changed since the last one, not on every command;
# setuptools' notice about editable installs says nothing a user of this checkout needs.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet \
       --disable-pip-version-check
CORE_STAMP := $(VENV)/.installed-core
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run install install-core test test-core lint fuzz bench services-up services-down \
        services-status integration-external-exit-gate clean

# Serve on the embedded defaults: nothing to install but the package itself.
run: $(CORE_STAMP)
	$(BIN)/weaver serve --host $(HOST) --port $(PORT) --demo

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Weaver needs Python 3.11 or newer: make run PYTHON=python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@# A current pip installs the dependencies faster than the one venv bundles.
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip

$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(DEV_STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS) $(EXAMPLES) $(SERVICES_PKG)) | $(BIN)/python
	$(PIP) -e '.[dev]' $(addprefix -e ,$(PLUGINS) $(EXAMPLES) $(SERVICES_PKG))
	scripts/browser.sh
	touch $@ $(CORE_STAMP)

install-core: $(CORE_STAMP)

install: $(DEV_STAMP)

# Everything: real services up, then every suite, live ones included, then the fuzzer.
test: install
	scripts/services.sh up
	eval "$$(scripts/services.sh env)" && WEAVER_RUN_E2E=1 $(BIN)/pytest -q -rs
	$(MAKE) fuzz

# The core and the embedded defaults only: no server needed.
test-core: install
	$(BIN)/pytest -q tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for plugin in $(PLUGINS) $(EXAMPLES) $(SERVICES_PKG); do (cd $$plugin && $(CURDIR)/$(BIN)/mypy) || exit 1; done
	$(BIN)/hadolint Dockerfile

# schemathesis against a real `weaver serve`, from its /openapi.json (scripts/fuzz_api.py).
fuzz: install
	$(BIN)/python scripts/fuzz_api.py --max-examples $(FUZZ_EXAMPLES)

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
