#!/usr/bin/env bash
# `make test`: the suite, while the local model installs in the background (a llama.cpp compile
# unless pip has the wheel cached); then the tests of the real local model (marker local_model).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.local-model
log=.venv/local-model-install.log
installer=""
if [ ! "$stamp" -nt pyproject.toml ]; then
  (scripts/install_local_model.sh >"$log" 2>&1 && touch "$stamp") &
  installer=$!
  echo "local model: installing in the background meanwhile (log: $log)"
fi
status=0
.venv/bin/python -m pytest tests -m "not local_model" --durations=25 || status=$?
if [ -n "$installer" ]; then
  if ! wait "$installer"; then
    cat "$log"
    echo "local model: the install failed (log above)"
    exit 1
  fi
  cat "$log"
fi
.venv/bin/python -m pytest tests -m local_model || status=$?
exit "$status"
