"""`ragqa serve` starts the embedded LLM and never leaves it behind."""

from __future__ import annotations

import signal
import threading
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


def test_no_llm_process_remains_when_the_server_is_killed_mid_answer(sample_index, tmp_path):
    server = start_server(sample_index, tmp_path / "serve.log")
    children = server.llm_children()

    def ask() -> None:
        try:
            body = {"question": "Does ragqa need a GPU?", "collection": "default", "max_tokens": 256, "mode": "rag"}
            httpx.post(f"{server.url}/v1/ask", json=body, timeout=120)
        except httpx.HTTPError:
            pass  # the server dies under it

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    time.sleep(2)  # retrieval is done; the LLM is reading the ~1,000-token prompt
    stop_server(server, signal.SIGKILL)
    # a graceful shutdown would wait for the generation nobody is waiting for any more
    assert wait_gone(children) == [], "orphaned LLM process after SIGKILL mid-answer"


def test_an_answer_comes_from_the_embedded_model(sample_index, tmp_path):
    server = start_server(sample_index, tmp_path / "serve.log")
    try:
        response = httpx.post(
            f"{server.url}/v1/ask", json={"question": "Does ragqa need a GPU?", "max_tokens": 64, "mode": "rag"}, timeout=300
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "smollm2-135m-instruct"
        assert body["sources"][0]["doc"] == "faq.txt"
        assert body["usage"]["completion_tokens"] > 0
    finally:
        stop_server(server)
