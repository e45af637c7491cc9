"""Time to first token when streaming versus the time to the whole answer, over HTTP against
a running ragqa (`ragqa serve`). Each question once with stream: true (client-side time to the
first `token` event and to `done`), and once without streaming.
Prints JSON, then a short table.

    python bench/streaming_ttft.py --url http://127.0.0.1:8000 --collection default [--api-key K]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

QUESTIONS = [
    "What is ragqa?",
    "Does ragqa need a GPU?",
    "How does ingestion work?",
    "Which embedding model does ragqa use?",
    "How do I check that the service is ready?",
]


def streamed(client: httpx.Client, body: dict) -> dict:
    started = time.perf_counter()
    first = None
    with client.stream("POST", "/v1/ask", json={**body, "stream": True}) as response:
        response.raise_for_status()
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                if event == "token" and first is None:
                    first = time.perf_counter()
            elif line.startswith("data:") and event == "done":
                done = json.loads(line[5:])
    end = time.perf_counter()
    return {
        "first_token_ms": round(((first or end) - started) * 1000, 1),
        "total_ms": round((end - started) * 1000, 1),
        "tokens": done["usage"]["completion_tokens"],
    }


def whole(client: httpx.Client, body: dict) -> dict:
    started = time.perf_counter()
    response = client.post("/v1/ask", json=body)
    response.raise_for_status()
    return {
        "total_ms": round((time.perf_counter() - started) * 1000, 1),
        "tokens": response.json()["usage"]["completion_tokens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--collection", default="default")
    parser.add_argument("--api-key")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    rows = []
    with httpx.Client(base_url=args.url, headers=headers, timeout=900) as client:
        whole(client, {"question": "warm-up", "collection": args.collection, "max_tokens": 4})
        questions = QUESTIONS[: args.questions]
        bodies = [{"question": q, "collection": args.collection, "max_tokens": args.max_tokens} for q in questions]
        # All streamed, then all whole: each request follows one for another question, so neither
        # kind profits from llama.cpp reusing the previous prompt's cache for the same question.
        streams = [streamed(client, body) for body in bodies]
        fulls = [whole(client, body) for body in bodies]
        rows = [{"question": q, "stream": s, "full": f} for q, s, f in zip(questions, streams, fulls)]
    median = lambda xs: round(statistics.median(xs), 1)  # noqa: E731
    summary = {
        "questions": len(rows),
        "median_first_token_ms": median([r["stream"]["first_token_ms"] for r in rows]),
        "median_stream_total_ms": median([r["stream"]["total_ms"] for r in rows]),
        "median_full_answer_ms": median([r["full"]["total_ms"] for r in rows]),
        "median_completion_tokens": median([r["full"]["tokens"] for r in rows]),
        "rows": rows,
    }
    print(json.dumps(summary))
    print(f"{'question':45}{'first token':>13}{'stream end':>12}{'non-stream':>12}")
    for r in rows:
        print(f"{r['question'][:44]:45}{r['stream']['first_token_ms']:>13}{r['stream']['total_ms']:>12}{r['full']['total_ms']:>12}")
    print(f"{'median':45}{summary['median_first_token_ms']:>13}{summary['median_stream_total_ms']:>12}{summary['median_full_answer_ms']:>12}")


if __name__ == "__main__":
    main()
