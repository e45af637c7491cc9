"""Throughput under 64 concurrent clients: ragqa's /v1/ask against the LLM server it calls, alone.

    python bench/concurrency.py [--clients 64] [--duration 20] [--delay-ms 200] [--workers 1 2]
                                [--backends torch onnx] [--baseline ../main] [--llm-url URL --llm-model NAME]

Starts bench/fixed_latency_llm.py (every completion takes a fixed 200 ms), ingests the sample
documents into a temporary collection, starts `ragqa serve --workers W` in front of that LLM
(once per W and embedding backend given, one after the other), and drives each with the same
number of closed-loop clients for the same time. Reports requests/s of each, the ratio
ragqa / direct, and ragqa's own CPU per request: the CPU time of the serving processes (`ragqa
serve` and its workers; not the LLM server, not the clients) over the run, divided by the
requests answered. The LLM server is driven directly before and after ragqa's runs (after a
2 s warm-up each), and the ratio divides by the faster of the two. ``--llm-url`` puts a real server (vLLM) in the fixed-latency one's place:
its direct side then gets the bare question, while ragqa's prompt holds the passages too.
``--baseline DIR`` adds the same runs of another checkout's code (its `app` first on
PYTHONPATH; e.g. main), so that before and after share the machine's state.

Every request asks a question no earlier one asked (the sample questions with a running case
number): ragqa keeps recent question vectors, and a bench that repeated four questions would
measure that cache. ``--repeat-questions`` sends the four as they are.

Prints one JSON line, then a short table. The top-level "ragqa" and "ratio_ragqa_over_direct"
are those of the best run of this checkout. The 1-minute load average is recorded before and
after each run: the box may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.core.config import EmbeddingBackend, Settings  # noqa: E402
from app.llm.embedded import free_loopback_port  # noqa: E402
from bench._serve import (  # noqa: E402
    SAMPLE_QUESTIONS,
    ingest_samples,
    start_fixed_latency_llm,
    start_ragqa_serve,
    stop,
    wait_until_up,
)

QUESTIONS = SAMPLE_QUESTIONS


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


def wait_for_workers(base_url: str, workers: int, timeout_s: float = 300) -> None:
    """Until each of the ``workers`` has answered (X-Ragqa-Worker names it): a worker that is
    still loading the embedding model takes no connections."""
    if workers == 1:
        return
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s

    async def batch() -> None:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            replies = await asyncio.gather(
                *(client.get(f"{base_url}/healthz") for _ in range(8)), return_exceptions=True
            )
        seen.update(r.headers.get("x-ragqa-worker", "") for r in replies if isinstance(r, httpx.Response))

    while len(seen - {""}) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {workers} workers answered in {timeout_s:.0f}s")
        asyncio.run(batch())
        time.sleep(0.2)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its living descendants: psutil if installed, else /proc."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            total = 0.0
            for process in [root, *root.children(recursive=True)]:
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    continue
            return total
        except psutil.Error:
            return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per side")
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="ragqa serve --workers; several: one run each"
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=get_args(EmbeddingBackend),
        help="RAGQA_EMBEDDING_BACKEND of the runs (default: the setting's); several: one run each",
    )
    parser.add_argument(
        "--baseline", type=Path, help="also run another checkout's code (its app/ first on PYTHONPATH)"
    )
    parser.add_argument(
        "--llm-url", help="an OpenAI-compatible server to use instead of the fixed-latency one"
    )
    parser.add_argument(
        "--llm-model", default="smollm2-135m", help="the model name it serves (with --llm-url)"
    )
    parser.add_argument("--repeat-questions", action="store_true", help="the four sample questions, repeated")
    args = parser.parse_args()
    if min(args.workers) < 1:
        parser.error("--workers must be at least 1")
    if args.baseline and not (args.baseline / "app").is_dir():
        parser.error(f"--baseline {args.baseline}: no app/ folder there")
    backends = args.backends or [Settings().embedding_backend]
    # (label, PYTHONPATH, backend, workers): this checkout's runs, then the baseline's.
    plans = [("ragqa", str(REPO), backend, w) for backend in backends for w in args.workers]
    if args.baseline:
        plans += [("baseline", str(args.baseline.resolve()), None, w) for w in args.workers]

    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-concurrency-"))
    llm = None
    if args.llm_url:
        llm_url, llm_model = args.llm_url.rstrip("/"), args.llm_model
    else:
        llm_port = free_loopback_port()
        llm_url, llm_model = f"http://127.0.0.1:{llm_port}/v1", "fixed-latency"
        llm = start_fixed_latency_llm(llm_port, args.delay_ms, work / "llm.log")
    api = None
    runs: list[dict] = []
    try:
        env = {
            **os.environ,
            "RAGQA_INDEX_DIR": str(work / "indexes"),
            "RAGQA_LLM_BASE_URL": llm_url,
            "RAGQA_LLM_MODEL": llm_model,
        }
        ingest_samples("bench", env)
        if llm is not None:
            wait_until_up(f"{llm_url}/models", llm)

        def direct_body(i: int) -> dict:
            return {
                "model": llm_model,
                "messages": [{"role": "user", "content": QUESTIONS[i % 4]}],
                "max_tokens": 16,
            }

        asked = itertools.count()

        def ask_body(i: int) -> dict:
            n = next(asked)
            question = QUESTIONS[n % 4] if args.repeat_questions else f"{QUESTIONS[n % 4][:-1]}, case {n}?"
            return {"question": question, "collection": "bench", "max_tokens": 16}

        def drive_direct() -> dict:
            asyncio.run(drive(f"{llm_url}/chat/completions", direct_body, args.clients, 2.0))  # warm-up
            load_before = os.getloadavg()[0]
            side = asyncio.run(drive(f"{llm_url}/chat/completions", direct_body, args.clients, args.duration))
            side["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            return side

        directs = [drive_direct()]
        for label, pythonpath, backend, workers in plans:
            name = f"{label}-{backend or 'own'}-{workers}"
            run_env = {**env, "PYTHONPATH": pythonpath}
            if backend:
                run_env["RAGQA_EMBEDDING_BACKEND"] = backend
            api_port = free_loopback_port()
            api, _ = start_ragqa_serve(run_env, work / f"api-{name}.log", api_port, workers=workers)
            wait_until_up(f"http://127.0.0.1:{api_port}/healthz", api)
            wait_for_workers(f"http://127.0.0.1:{api_port}", workers)
            url = f"http://127.0.0.1:{api_port}/v1/ask"
            # warm-up: concurrent asks, so that every worker has loaded the collection
            warm = asyncio.run(drive(url, ask_body, 4 * workers, 2.0))
            if not warm["requests"]:
                raise SystemExit(
                    f"{name} answered no warm-up ask:\n{(work / f'api-{name}.log').read_text()[-2000:]}"
                )
            load_before = os.getloadavg()[0]
            cpu_before = cpu_seconds(api.pid)
            ragqa = asyncio.run(drive(url, ask_body, args.clients, args.duration))
            cpu_s = cpu_seconds(api.pid) - cpu_before
            ragqa["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            ragqa["cpu_s"] = round(cpu_s, 2)
            ragqa["cpu_ms_per_request"] = (
                round(1000 * cpu_s / ragqa["requests"], 1) if ragqa["requests"] else None
            )
            runs.append(
                {
                    "code": label,
                    "backend": backend,
                    "workers": workers,
                    "ragqa": ragqa,
                }
            )
            stop(api)
            api = None
        # The direct side again at the end: on a shared box its rate moves with the load, and
        # the ratio divides by the faster of the two (the one less in ragqa's favour).
        directs.append(drive_direct())
    finally:
        stop(api, llm)
    direct = max(directs, key=lambda side: side["requests_per_s"])
    for run in runs:
        rate = run["ragqa"]["requests_per_s"]
        run["ratio_ragqa_over_direct"] = (
            round(rate / direct["requests_per_s"], 3) if direct["requests_per_s"] else None
        )

    best = max(
        (run for run in runs if run["code"] == "ragqa"), key=lambda run: run["ragqa"]["requests_per_s"]
    )
    result = {
        "bench": "concurrency",
        "clients": args.clients,
        "duration_s": args.duration,
        "llm_delay_ms": None if args.llm_url else args.delay_ms,
        "llm": {"url": llm_url, "model": llm_model} if args.llm_url else "bench/fixed_latency_llm.py",
        "direct": direct,
        "direct_runs": directs,
        "ragqa": best["ragqa"],
        "ratio_ragqa_over_direct": best["ratio_ragqa_over_direct"],
        "best_workers": best["workers"],
        "best_backend": best["backend"],
        "baseline": str(args.baseline) if args.baseline else None,
        "questions": "repeated" if args.repeat_questions else "distinct",
        "runs": runs,
        "machine": {"cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result))
    print()
    print(
        f"{'':34} {'req/s':>8} {'p50 ms':>8} {'errors':>7} {'ratio':>7} {'CPU ms/req':>10}  load before/after"
    )
    print(
        f"{'LLM server directly (best)':34} {direct['requests_per_s']:8.2f} {direct['p50_ms'] or 0:8.1f}"
        f" {direct['errors']:7d} {'':7} {'':10}  {direct['load_avg_1m']}"
    )
    print(f"{'  (first, last: req/s)':34} {', '.join(str(side['requests_per_s']) for side in directs)}")
    for run in runs:
        side = run["ragqa"]
        label = f"{run['code']} {run['backend'] or ''} --workers {run['workers']}".replace("  ", " ")
        print(
            f"{label:34} {side['requests_per_s']:8.2f} {side['p50_ms'] or 0:8.1f}"
            f" {side['errors']:7d} {run['ratio_ragqa_over_direct'] or 0:7.3f} {side['cpu_ms_per_request'] or 0:10.1f}"
            f"  {side['load_avg_1m']}"
        )


if __name__ == "__main__":
    main()
