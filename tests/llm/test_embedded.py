"""`ragqa serve` starts the embedded LLM and never leaves it behind."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.conftest import is_running, start_server, stop_server

pytestmark = pytest.mark.slow


def wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_running(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if is_running(p)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_llm_process_remains_after_the_server_stops(sample_index, tmp_path, sig):
    server = start_server(sample_index, tmp_path / "serve.log")
    children = server.llm_children()
    assert len(children) == 1, "the embedded LLM server should be a child of ragqa serve"
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200

    stop_server(server, sig)
    assert wait_gone(children) == [], f"orphaned LLM process after {sig.name}"


def test_an_answer_comes_from_the_embedded_model(sample_index, tmp_path):
    server = start_server(sample_index, tmp_path / "serve.log")
    try:
        response = httpx.post(
            f"{server.url}/v1/ask", json={"question": "Does ragqa need a GPU?", "max_tokens": 64}, timeout=300
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "smollm2-135m-instruct"
        assert body["sources"][0]["doc"] == "faq.txt"
        assert body["usage"]["completion_tokens"] > 0
    finally:
        stop_server(server)
