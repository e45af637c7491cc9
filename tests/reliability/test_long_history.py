"""Failure 8: an over-long chat history is trimmed to the window; what cannot fit is a 422,
never a 502."""

from __future__ import annotations

import json

import httpx

from tests.reliability.conftest import completion, install_fake_llm

WINDOW_CHARS = 4096 * 3  # a 4,096-token window at ~3 characters a token


def context_limited_llm(seen: list[int]):
    """Answers like llama.cpp's server: a 400 when the prompt exceeds its context."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        chars = sum(len(m["content"]) for m in body["messages"])
        seen.append(chars)
        if chars > WINDOW_CHARS:
            return httpx.Response(400, json={"error": {"message": "Requested tokens (6123) exceed context window of 4096", "type": "invalid_request_error"}})
        return httpx.Response(200, json=completion("What is ragqa?"))

    return handler


def chat(client, history_chars: int):
    body = {
        "model": "ragqa/default",
        "messages": [
            {"role": "user", "content": "Tell me about ragqa. " + "x" * history_chars},
            {"role": "assistant", "content": "It answers questions from documents."},
            {"role": "user", "content": "How do I install it?"},
        ],
    }
    return client.post("/v1/chat/completions", json=body)


def test_a_20000_character_earlier_turn_is_trimmed_not_a_502(make_client):
    client = make_client(refusal_min_score=-1.0, min_relevance=-1.0)
    seen: list[int] = []
    install_fake_llm(client.app.state.services.llm, context_limited_llm(seen))
    response = chat(client, 20_000)
    assert response.status_code == 200, response.text
    assert seen and max(seen) <= WINDOW_CHARS


def test_an_upstream_context_overflow_is_a_422(make_client):
    client = make_client(refusal_min_score=-1.0, min_relevance=-1.0)

    def always_too_long(request):
        return httpx.Response(400, json={"error": {"message": "This model's maximum context length is 4096 tokens", "type": "BadRequestError"}})

    install_fake_llm(client.app.state.services.llm, always_too_long)
    response = chat(client, 10)
    assert response.status_code == 422, response.text
    assert "context window" in response.json()["error"]["message"]
