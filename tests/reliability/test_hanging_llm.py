"""An LLM that accepts the connection and never answers: a 504 within the timeout, not a hang."""

from __future__ import annotations

import socket
import threading
import time

import pytest


@pytest.fixture
def hanging_llm():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)  # read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_a_hanging_llm_gives_a_504_within_the_timeout(make_client, hanging_llm):
    client = make_client(
        llm_base_url=hanging_llm, llm_timeout_s=1.5, refusal_min_score=-1.0, min_relevance=-1.0
    )
    started = time.monotonic()
    response = client.post("/v1/ask", json={"question": "What is ragqa?", "mode": "rag"})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert elapsed < 1.5 * 4 + 5  # the tokenizer probe and the answer each bounded by the timeout
    assert "<llm>" in response.json()["detail"] or "did not answer" in response.json()["detail"]
