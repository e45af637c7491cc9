"""What API keys, rate limiting and Prometheus metrics cost on POST /v1/retrieve.

Two uvicorn servers in this process over the same collection: one with keys, a rate limit and
metrics on, one with all three off. Requests alternate between them, so both see the same
machine load. Prints JSON, then a short table.

    python bench/auth_metrics_overhead.py --index-dir indexes --collection default --requests 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from app.api.main import create_app
from app.core.config import Settings
from app.llm.embedded import free_loopback_port

QUESTIONS = [
    "What is ragqa?",
    "Does it need a GPU?",
    "How does ingestion work?",
    "Which embedding model is used?",
    "How do I check that the service is ready?",
]


def serve(settings: Settings) -> tuple[str, uvicorn.Server]:
    port = free_loopback_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error", log_config=None)
    )
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=Path("indexes"))
    parser.add_argument("--collection", default="default")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    dead_llm = f"http://127.0.0.1:{free_loopback_port()}/v1"  # retrieval needs no LLM
    base = dict(_env_file=None, index_dir=args.index_dir, llm_base_url=dead_llm)
    plain_url, plain = serve(Settings(**base, api_keys=[], rate_limit="", metrics_enabled=False))
    guarded_url, guarded = serve(
        Settings(**base, api_keys=["bench-key"], rate_limit="1000000/minute", metrics_enabled=True)
    )
    latencies: dict[str, list[float]] = {"off": [], "on": []}
    with httpx.Client(timeout=60) as client:
        for i in range(args.requests + 10):
            pair = [("off", plain_url, {}), ("on", guarded_url, {"Authorization": "Bearer bench-key"})]
            for name, url, headers in pair if i % 2 else pair[::-1]:  # alternate who goes first
                body = {"question": QUESTIONS[i % len(QUESTIONS)], "collection": args.collection, "top_k": 5}
                started = time.perf_counter()
                response = client.post(f"{url}/v1/retrieve", json=body, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if i >= 10:  # warm-up
                    latencies[name].append(elapsed)
        scrape = client.get(f"{guarded_url}/metrics").text
    plain.should_exit = guarded.should_exit = True

    def p(values, q):
        return round(statistics.quantiles(values, n=100)[q - 1], 2)

    result = {
        "requests_each": args.requests,
        "collection": args.collection,
        "p50_ms": {k: p(v, 50) for k, v in latencies.items()},
        "p90_ms": {k: p(v, 90) for k, v in latencies.items()},
        "p50_overhead_ms": round(p(latencies["on"], 50) - p(latencies["off"], 50), 2),
        "metrics_scrape_bytes": len(scrape),
    }
    print(json.dumps(result))
    print(f"{'':22}{'p50 ms':>10}{'p90 ms':>10}")
    for name, label in (("off", "keys+limit+metrics off"), ("on", "keys+limit+metrics on")):
        print(f"{label:22}{result['p50_ms'][name]:>10}{result['p90_ms'][name]:>10}")
    print(f"p50 overhead: {result['p50_overhead_ms']} ms")


if __name__ == "__main__":
    main()
