"""Throughput under 64 concurrent clients: ragqa's /v1/ask against the LLM server it calls, alone.

    python bench/concurrency.py [--clients 64] [--duration 20] [--delay-ms 200]

Starts bench/fixed_latency_llm.py (every completion takes a fixed 200 ms), ingests the sample
documents into a temporary collection, starts `ragqa serve` in front of that LLM, and drives
each with the same number of closed-loop clients for the same time. Reports requests/s of
both and the ratio ragqa / direct. Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.llm.embedded import free_loopback_port  # noqa: E402
from bench._serve import BIN, start_ragqa_serve, stop, wait_until_up

QUESTIONS = ["What is ragqa?", "How do I ingest documents?", "Which formats are supported?", "How is the LLM served?"]


async def drive(url: str, make_body, clients: int, duration_s: float) -> dict:
    """Closed loop: each client sends its next request when the previous one is answered."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one_client(n: int) -> None:
            nonlocal errors
            i = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=make_body(n + i))
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per side")
    parser.add_argument("--delay-ms", type=float, default=200.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-concurrency-"))
    llm_port, api_port = free_loopback_port(), free_loopback_port()
    llm = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "fixed_latency_llm.py"), "--port", str(llm_port),
         "--delay-ms", str(args.delay_ms)],
        stdout=(work / "llm.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = None
    try:
        env = {**os.environ, "RAGQA_INDEX_DIR": str(work / "indexes"),
               "RAGQA_LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1", "RAGQA_LLM_MODEL": "fixed-latency"}  # fmt: skip
        subprocess.run(
            [str(BIN / "ragqa"), "ingest", str(REPO / "samples" / "ragqa-docs"), "--collection", "bench", "--json"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        api, _ = start_ragqa_serve(env, work / "api.log", api_port)
        wait_until_up(f"http://127.0.0.1:{llm_port}/v1/models", llm)
        wait_until_up(f"http://127.0.0.1:{api_port}/healthz", api)

        def direct_body(i: int) -> dict:
            return {"model": "fixed-latency", "messages": [{"role": "user", "content": QUESTIONS[i % 4]}], "max_tokens": 16}

        def ask_body(i: int) -> dict:
            return {"question": QUESTIONS[i % 4], "collection": "bench", "max_tokens": 16}

        # one warm-up ask: the first one loads the collection
        httpx.post(f"http://127.0.0.1:{api_port}/v1/ask", json=ask_body(0), timeout=120).raise_for_status()
        direct = asyncio.run(drive(f"http://127.0.0.1:{llm_port}/v1/chat/completions", direct_body, args.clients, args.duration))
        ragqa = asyncio.run(drive(f"http://127.0.0.1:{api_port}/v1/ask", ask_body, args.clients, args.duration))
    finally:
        stop(api, llm)

    ratio = ragqa["requests_per_s"] / direct["requests_per_s"] if direct["requests_per_s"] else None
    result = {
        "bench": "concurrency",
        "clients": args.clients,
        "duration_s": args.duration,
        "llm_delay_ms": args.delay_ms,
        "direct": direct,
        "ragqa": ragqa,
        "ratio_ragqa_over_direct": round(ratio, 3) if ratio is not None else None,
        "machine": {"cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result))
    print()
    print(f"{'':24} {'req/s':>8} {'p50 ms':>8} {'errors':>7}")
    for name, side in (("LLM server directly", direct), ("ragqa /v1/ask", ragqa)):
        print(f"{name:24} {side['requests_per_s']:8.2f} {side['p50_ms'] or 0:8.1f} {side['errors']:7d}")
    print(f"{'ratio ragqa / direct':24} {ratio or 0:8.3f}")


if __name__ == "__main__":
    main()
