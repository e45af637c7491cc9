"""The complaint "Requested tokens exceed context window of 4096" must never reach a user.

Chunks of about 3,000 characters, top_k=50 and max_tokens=2048 ask for ~4x the window; ragqa
packs what fits, on both backends: vLLM (exact counts) and the embedded llama.cpp server.
"""

from __future__ import annotations

import httpx
import pytest

from tests.vllm.conftest import WINDOW

BACKENDS = [
    pytest.param("ragqa_on_vllm", marks=[pytest.mark.vllm, pytest.mark.slow], id="vllm"),
    pytest.param("ragqa_embedded", marks=[pytest.mark.slow], id="embedded"),
]
QUESTIONS = {
    "zero_shot": "Who founded the American Broadcasting Company?",
    "few_shot": "What did Martin Luther nail to the church door?",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", list(QUESTIONS))
def test_fifty_long_passages_and_a_large_answer_never_overflow(backend, mode, request, record):
    server = request.getfixturevalue(backend)
    for question in [QUESTIONS[mode]]:
        body = {"question": question, "collection": "long", "top_k": 50, "max_tokens": 2048, "prompt_mode": mode, "mode": "rag"}
        response = httpx.post(f"{server.url}/v1/ask", json=body, timeout=600)
        assert response.status_code == 200, response.text
        result = response.json()
        used, dropped = len(result["sources"]), result["passages_dropped"]
        assert used + dropped == 50 and used >= 1 and dropped > 0
        prompt_tokens = result["usage"]["prompt_tokens"]  # counted by the engine itself
        assert prompt_tokens + 2048 <= WINDOW
        assert result["usage"]["completion_tokens"] <= 2048
        record(
            f"budget_{request.node.callspec.id}",
            {"used": used, "dropped": dropped, "prompt_tokens": prompt_tokens, "max_tokens": 2048, "window": WINDOW},
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_question_that_cannot_fit_is_a_clear_422(backend, request):
    server = request.getfixturevalue(backend)
    question = "한국어 질문입니다 " * 400  # ~4,000 characters, ~2 tokens per Korean character
    body = {"question": question[:4000], "collection": "long", "top_k": 5, "max_tokens": 2048}
    response = httpx.post(f"{server.url}/v1/ask", json=body, timeout=300)
    assert response.status_code == 422, response.text
    assert "context window" in response.json()["detail"]


@pytest.mark.slow
def test_the_embedded_server_serves_no_adapters(ragqa_embedded):
    listed = httpx.get(f"{ragqa_embedded.url}/v1/adapters", timeout=30)
    assert listed.status_code == 200 and listed.json()["adapters"] == []
    body = {"question": "Who founded ABC?", "collection": "long", "adapter": "demo"}
    response = httpx.post(f"{ragqa_embedded.url}/v1/ask", json=body, timeout=60)
    assert response.status_code == 422
    assert "serves no LoRA adapters" in response.json()["detail"]
