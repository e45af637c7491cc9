"""The fixed-latency LLM server and the concurrency benchmark, in a short smoke mode."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest

from app.llm.embedded import free_loopback_port
from tests.conftest import REPO


@pytest.fixture
def fixed_latency_server():
    port = free_loopback_port()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "fixed_latency_llm.py"), "--port", str(port), "--delay-ms", "200"]
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_fixed_latency_server_speaks_openai_chat_and_waits_concurrently(fixed_latency_server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{fixed_latency_server}/v1", api_key="EMPTY")
    started = time.perf_counter()
    reply = client.chat.completions.create(
        model="fixed-latency", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert time.perf_counter() - started >= 0.2
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0

    async def many(n: int) -> list[int]:
        async with httpx.AsyncClient(base_url=fixed_latency_server, timeout=30) as http:
            body = {"messages": [{"role": "user", "content": "hi"}]}
            replies = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(n)))
        return [r.status_code for r in replies]

    started = time.perf_counter()
    codes = asyncio.run(many(16))
    # sixteen requests served one at a time would take 3.2 s
    assert codes == [200] * 16 and time.perf_counter() - started < 1.6


@pytest.mark.slow
def test_concurrency_bench_smoke():
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "concurrency.py"),
            "--clients",
            "8",
            "--duration",
            "2",
            "--workers",
            "1",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[0])
    direct, ragqa = result["direct"], result["ragqa"]
    assert direct["errors"] == 0 and ragqa["errors"] == 0
    assert direct["requests"] > 0 and ragqa["requests"] > 0
    # every completion waits 200 ms, so 8 clients cannot exceed 40 requests/s
    assert direct["p50_ms"] >= 200 and direct["requests_per_s"] <= 8 / 0.2 * 1.05
    assert result["ratio_ragqa_over_direct"] == pytest.approx(
        ragqa["requests_per_s"] / direct["requests_per_s"], rel=0.01
    )
    assert [run["workers"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["ragqa"]["errors"] == 0 and run["ragqa"]["cpu_ms_per_request"] > 0
    assert result["best_workers"] in (1, 2)
    # The table's row of the 2-worker run, named by the backend it ran on.
    backend = result["runs"][-1]["backend"]
    assert " ".join(filter(None, ["ragqa", backend, "--workers 2"])) in done.stdout
