"""Servers for the benchmarks: `ragqa serve` and the fixed-latency LLM as subprocesses on free
ports, and waiting for one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.llm.embedded import free_loopback_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]

# Questions about the sample collection (samples/ragqa-docs).
SAMPLE_QUESTIONS = [
    "What is ragqa?",
    "How do I ingest documents?",
    "Which formats are supported?",
    "How is the LLM served?",
]


def ingest_samples(collection: str, env: dict[str, str] | None = None) -> None:
    """`ragqa ingest` of the sample documents into ``collection`` (``env``: RAGQA_* settings;
    None: this process's environment)."""
    subprocess.run(
        [str(BIN / "ragqa"), "ingest", str(REPO / "samples" / "ragqa-docs"), "--collection", collection, "--json"],
        env=env,
        check=True,
        capture_output=True,
    )


def start_fixed_latency_llm(port: int, delay_ms: float, log: Path) -> subprocess.Popen:
    """bench/fixed_latency_llm.py on ``port``: every completion takes ``delay_ms``; output to ``log``."""
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "fixed_latency_llm.py"),
            "--port",
            str(port),
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up in {timeout_s}s")


def start_ragqa_serve(
    env: dict[str, str], log: Path, port: int | None = None, workers: int | None = None
) -> tuple[subprocess.Popen, str]:
    """`ragqa serve` with ``env`` (RAGQA_* settings), output to ``log``; returns it and its URL.
    ``workers``: `--workers`, else RAGQA_WORKERS (1).

    Set RAGQA_LLM_BASE_URL in ``env``, or it starts the embedded LLM first. Does not wait:
    call ``wait_until_up(f"{url}/healthz", process)``.
    """
    port = port or free_loopback_port()
    process = subprocess.Popen(
        [
            str(BIN / "ragqa"),
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *(["--workers", str(workers)] if workers else []),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def stop(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
