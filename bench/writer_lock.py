"""Retrieval latency while uploads wait on a locked collection, against a running ragqa.

Not a test. Three phases, side by side in one run, each with the same sequential
`/v1/retrieve` calls on collection READ:
  1. baseline: nothing else happens;
  2. locked: the writer lock of collection WRITE is held (as a long `ragqa ingest` holds it),
     and UPLOADS uploads to WRITE are sent at once and wait on it;
  3. after: the lock is released.
It prints JSON, then a short table: p50/p99 of the retrievals in each phase, and what the
uploads got (a 409 with Retry-After is the design: writers do not take the readers' threads).

    python -m bench.writer_lock --url http://127.0.0.1:8000 --index-dir indexes \\
        --read default --write locked-bench --uploads 45

The server and this script must share the index folder (the lock is an flock on it). The WRITE
collection is created by the first upload when it does not exist, and is left in place.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from app.core.store import IndexStore


def held_lock(index_dir: Path, collection: str) -> threading.Event:
    """Hold ``collection``'s writer lock in a thread until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with IndexStore(index_dir).writer_lock(collection):
            held.set()
            release.wait(600)

    threading.Thread(target=hold, daemon=True).start()
    if not held.wait(30):
        raise SystemExit(f"could not take the writer lock of {collection!r} in 30 s")
    return release


async def retrievals(http: httpx.AsyncClient, collection: str, n: int) -> list[float]:
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        response = await http.post(
            "/v1/retrieve", json={"question": f"What is ragqa? {i}", "collection": collection}
        )
        response.raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def upload(http: httpx.AsyncClient, collection: str, i: int) -> str:
    files = [
        ("files", (f"note-{i}.txt", f"A note number {i} about a locked collection.".encode(), "text/plain"))
    ]
    try:
        response = await http.post(f"/v1/collections/{collection}/documents", files=files)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    retry = " Retry-After" if "retry-after" in response.headers else ""
    return f"{response.status_code}{retry}"


def summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
    }


async def run(args) -> dict:
    async with httpx.AsyncClient(base_url=args.url, timeout=args.timeout) as http:
        await retrievals(http, args.read, 5)  # warm: the collection is loaded
        await upload(http, args.write, -1)  # the write collection exists before it is locked
        baseline = await retrievals(http, args.read, args.retrievals)
        release = held_lock(Path(args.index_dir), args.write)
        started = time.monotonic()
        uploads = [asyncio.create_task(upload(http, args.write, i)) for i in range(args.uploads)]
        await asyncio.sleep(0.2)  # the uploads are in and waiting
        locked = await retrievals(http, args.read, args.retrievals)
        outcomes = Counter(await asyncio.gather(*uploads))
        uploads_s = time.monotonic() - started
        release.set()
        after = await retrievals(http, args.read, args.retrievals)
    return {
        "read": args.read,
        "write": args.write,
        "uploads": args.uploads,
        "baseline": summary(baseline),
        "locked": summary(locked),
        "after": summary(after),
        "upload_outcomes": dict(outcomes),
        "uploads_answered_s": round(uploads_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--index-dir", default="indexes", help="the server's RAGQA_INDEX_DIR")
    parser.add_argument("--read", default="default", help="the collection retrieved from")
    parser.add_argument("--write", default="locked-bench", help="the collection locked and uploaded to")
    parser.add_argument("--uploads", type=int, default=45)
    parser.add_argument("--retrievals", type=int, default=60, help="per phase")
    parser.add_argument("--timeout", type=float, default=120)
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))
    print(f"{'phase':<10}{'n':>5}{'p50 ms':>10}{'p99 ms':>10}")
    for phase in ("baseline", "locked", "after"):
        row = result[phase]
        print(f"{phase:<10}{row['n']:>5}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    print(f"uploads: {result['upload_outcomes']} within {result['uploads_answered_s']} s")


if __name__ == "__main__":
    main()
