"""LLMClient.chat: the body it sends, the completion it reads, and a malformed answer as LLMError."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from openai import AsyncOpenAI

from app.llm.client import ContextOverflow, LLMClient, LLMError, Sampling


def client_answering(status: int, payload: object) -> tuple[LLMClient, list[dict]]:
    """A client whose server answers every chat completion with ``payload``; the bodies it got."""
    bodies: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return httpx2.Response(status, json=payload)

    client = LLMClient("http://llm.invalid/v1", "base-model")
    client._openai = AsyncOpenAI(
        base_url=client.base_url,
        api_key="EMPTY",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    return client, bodies


def chat(client: LLMClient, sampling: Sampling = Sampling(), model: str | None = None):
    return asyncio.run(client.chat([{"role": "user", "content": "Q?"}], sampling, model=model))


def completion(content: str | None, **extra) -> dict:
    return {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        **extra,
    }


def test_a_completion_is_read_with_its_usage_and_model():
    payload = completion("  An answer. ", model="served", usage={"prompt_tokens": 12, "completion_tokens": 3})
    client, _ = client_answering(200, payload)
    answer = chat(client)
    assert (answer.text, answer.model, answer.prompt_tokens, answer.completion_tokens, answer.finish_reason) == (
        "An answer.",
        "served",
        12,
        3,
        "stop",
    )


def test_a_completion_without_usage_or_model_names_the_model_asked():
    client, _ = client_answering(200, completion(None))
    answer = chat(client, model="an-adapter")
    assert (answer.text, answer.model, answer.prompt_tokens) == ("", "an-adapter", 0)


def test_unset_sampling_fields_are_left_out_and_set_ones_sent():
    client, bodies = client_answering(200, completion("x"))
    chat(client)
    chat(client, Sampling(temperature=0.7, max_tokens=9, top_p=0.9, seed=4, stop=["\n\n"]))
    assert "top_p" not in bodies[0] and "seed" not in bodies[0]
    assert bodies[0]["model"] == "base-model" and bodies[0]["messages"] == [{"role": "user", "content": "Q?"}]
    assert {k: bodies[1][k] for k in ("temperature", "max_tokens", "top_p", "seed", "stop")} == {
        "temperature": 0.7,
        "max_tokens": 9,
        "top_p": 0.9,
        "seed": 4,
        "stop": ["\n\n"],
    }


@pytest.mark.parametrize("payload", [{"choices": []}, {"object": "error"}, ["not", "a", "completion"], "text"])
def test_an_answer_that_is_no_completion_is_an_llm_error(payload):
    client, _ = client_answering(200, payload)
    with pytest.raises(LLMError, match="no usable chat completion"):
        chat(client)


def test_a_context_overflow_is_told_apart_from_other_server_errors():
    client, _ = client_answering(400, {"error": {"message": "This model's maximum context length is 4096 tokens"}})
    with pytest.raises(ContextOverflow):
        chat(client)
    client, _ = client_answering(500, {"error": {"message": "boom"}})
    with pytest.raises(LLMError, match="answered 500") as raised:
        chat(client)
    assert not isinstance(raised.value, ContextOverflow)
