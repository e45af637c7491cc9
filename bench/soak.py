"""Soak a running ragqa: N clients on /v1/retrieve (and/or /v1/ask) for T seconds.

Not a test. Prints requests/s, p50/p99 latency, errors, and the RSS of the serving processes
(the given pid and its children, e.g. `ragqa serve` and its llama.cpp child) at start, peak
and end, sampled once a second.

    python -m bench.soak --url http://127.0.0.1:8000 --clients 32 --seconds 600 --pid $(pgrep -of 'ragqa serve')

Run it with `nice -n 10` on a shared machine, and say so next to any figure it gives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx

QUESTIONS = [
    "What is ragqa?",
    "Does ragqa need a GPU?",
    "How do I ingest documents?",
    "Which file formats can be uploaded?",
    "How are answers cited?",
]


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return total


async def client_loop(
    http: httpx.AsyncClient,
    routes: list[str],
    collection: str,
    deadline: float,
    latencies: list[float],
    errors: dict[str, int],
    n: int,
) -> None:
    i = n
    while time.monotonic() < deadline:
        route = routes[i % len(routes)]
        body = {"question": QUESTIONS[i % len(QUESTIONS)], "collection": collection}
        if route == "/v1/ask":
            body["max_tokens"] = 32
        i += 1
        started = time.perf_counter()
        try:
            response = await http.post(route, json=body)
            if response.status_code != 200:
                errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                continue
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            continue
        latencies.append(time.perf_counter() - started)


async def sample_rss(pid: int | None, deadline: float, samples: list[int]) -> None:
    while pid and time.monotonic() < deadline:
        samples.append(rss_bytes(pid))
        await asyncio.sleep(1.0)


async def soak(args) -> None:
    routes = {"retrieve": ["/v1/retrieve"], "ask": ["/v1/ask"], "both": ["/v1/retrieve", "/v1/ask"]}[
        args.route
    ]
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(
        base_url=args.url, headers=headers, timeout=args.timeout, limits=limits
    ) as http:
        latencies: list[float] = []
        errors: dict[str, int] = {}
        samples: list[int] = []
        if args.pid:
            samples.append(rss_bytes(args.pid))
        started = time.monotonic()
        deadline = started + args.seconds
        await asyncio.gather(
            sample_rss(args.pid, deadline, samples),
            *(
                client_loop(http, routes, args.collection, deadline, latencies, errors, n)
                for n in range(args.clients)
            ),
        )
        elapsed = time.monotonic() - started
    done = len(latencies)
    result: dict = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "routes": routes,
        "requests_ok": done,
        "requests_per_s": round(done / elapsed, 1),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
    }
    if latencies:
        ordered = sorted(latencies)
        result["p50_ms"] = round(statistics.median(ordered) * 1000, 1)
        result["p99_ms"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1)
    if samples:
        mb = [s / 2**20 for s in samples]
        warm = mb[min(len(mb) - 1, max(1, len(mb) // 10))]  # after the first tenth: warm-up
        result["rss_mb"] = {
            "start": round(mb[0]),
            "after_warm_up": round(warm),
            "peak": round(max(mb)),
            "end": round(mb[-1]),
        }
        result["rss_growth_after_warm_up_pct"] = round(100 * (mb[-1] - warm) / warm, 1)
    print(json.dumps(result))
    print(f"clients {args.clients}, {elapsed:.0f} s on {', '.join(routes)}")
    print(f"requests ok {done}, {result['requests_per_s']}/s; errors {result['errors']} {errors or ''}")
    if latencies:
        print(f"latency p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    if samples:
        rss = result["rss_mb"]
        print(
            f"RSS MB start {rss['start']}, after warm-up {rss['after_warm_up']}, peak {rss['peak']}, "
            f"end {rss['end']}; growth after warm-up {result['rss_growth_after_warm_up_pct']:+.1f} %"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--route", choices=["retrieve", "ask", "both"], default="retrieve")
    parser.add_argument("--collection", default="default")
    parser.add_argument("--pid", type=int, help="the serving process (its children are counted too)")
    parser.add_argument("--key", help="an API key, if the service needs one")
    parser.add_argument("--timeout", type=float, default=60)
    asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    main()
