"""ragqa over HTTP against a real vLLM server: ask, retrieve-then-ask, exact packing, adapters."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from app.llm.client import LLMClient, Sampling
from app.rag.packing import ContextPacker
from app.rag.prompts import PromptMode
from app.rag.retrieval import Passage
from tests.vllm.conftest import ADAPTER, WINDOW

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUESTION = "Who founded the American Broadcasting Company?"


def post(server, path: str, body: dict, timeout: float = 300) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=timeout)


def test_ask(ragqa_on_vllm, vllm, record):
    started = time.monotonic()
    response = post(ragqa_on_vllm, "/v1/ask", {"question": QUESTION, "collection": "long", "max_tokens": 64})
    record("ask_latency_s", round(time.monotonic() - started, 2))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == vllm.model
    assert body["answer"]
    assert body["sources"] and body["sources"][0]["doc"] == "American_Broadcasting_Company.txt"
    assert 0 < body["usage"]["completion_tokens"] <= 64
    assert body["usage"]["prompt_tokens"] + 64 <= WINDOW


def test_retrieve_then_ask_uses_the_retrieved_passages_in_order(ragqa_on_vllm):
    retrieved = post(ragqa_on_vllm, "/v1/retrieve", {"question": QUESTION, "collection": "long", "top_k": 3})
    assert retrieved.status_code == 200, retrieved.text
    passages = retrieved.json()["passages"]
    asked = post(
        ragqa_on_vllm, "/v1/ask", {"question": QUESTION, "collection": "long", "top_k": 3, "max_tokens": 32}
    )
    assert asked.status_code == 200, asked.text
    body = asked.json()
    # Three 3,000-character passages fit in 4,096 - 32 tokens: the model saw exactly those.
    assert [s["id"] for s in body["sources"]] == [p["id"] for p in passages]
    assert body["passages_dropped"] == 0


async def pack_and_chat(vllm, passages: list[Passage], max_tokens: int):
    llm = LLMClient(vllm.url, vllm.model, timeout_s=600)
    try:
        packer = ContextPacker(llm, configured_window=512)  # the served window must win
        packed = await packer.pack(PromptMode.few_shot, QUESTION, passages, max_tokens=max_tokens)
        completion = await llm.chat(packed.messages, Sampling(0.0, max_tokens, stop=["\n\n"]))
    finally:
        await llm.aclose()
    return packed, completion


def test_packing_is_token_exact_on_vllm(ragqa_on_vllm, vllm, record):
    """The packer's count of the rendered prompt is the engine's own: usage.prompt_tokens."""
    retrieved = post(ragqa_on_vllm, "/v1/retrieve", {"question": QUESTION, "collection": "long", "top_k": 50})
    # ``relevance`` is derived (Passage.relevance), not a field to pass back.
    passages = [Passage(**{k: v for k, v in p.items() if k != "relevance"}) for p in retrieved.json()["passages"]]
    assert len(passages) == 50
    packed, completion = asyncio.run(pack_and_chat(vllm, passages, 1024))
    assert packed.exact and packed.context_window == WINDOW
    assert completion.prompt_tokens == packed.prompt_tokens
    assert packed.prompt_tokens <= WINDOW - 1024 == packed.budget
    assert 0 < len(packed.passages) < 50 and packed.dropped == 50 - len(packed.passages)
    # The first passage that did not fit whole was cut at a sentence boundary, not dropped.
    assert packed.truncated
    cut, original = packed.passages[-1], passages[len(packed.passages) - 1]
    flat = lambda text: re.sub(r"\s+", " ", text).strip()  # noqa: E731
    assert flat(original.text).startswith(flat(cut.text)) and len(cut.text) < len(original.text)
    assert re.search(r"[.!?]$", cut.text)
    record(
        "vllm_exact_pack_few_shot_max_tokens_1024",
        {
            "prompt_tokens": packed.prompt_tokens,
            "budget": packed.budget,
            "window": WINDOW,
            "passages_used": len(packed.passages),
            "passages_dropped": packed.dropped,
        },
    )
    # Little room is wasted: less than one passage's worth (a passage is ~700 tokens).
    assert packed.budget - packed.prompt_tokens < 300


def test_adapters_are_listed(ragqa_on_vllm, vllm):
    response = httpx.get(f"{ragqa_on_vllm.url}/v1/adapters", timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [a["name"] for a in body["adapters"]] == [ADAPTER]
    assert body["adapters"][0]["base"] == vllm.model
    assert body["collection_defaults"] == {"tuned": ADAPTER}


def test_ask_with_an_adapter_is_answered_by_it(ragqa_on_vllm):
    body = {"question": QUESTION, "collection": "long", "top_k": 2, "max_tokens": 16}
    response = post(ragqa_on_vllm, "/v1/ask", {**body, "adapter": ADAPTER})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == ADAPTER


def test_an_unknown_adapter_is_a_422_that_lists_the_served_ones(ragqa_on_vllm):
    response = post(ragqa_on_vllm, "/v1/ask", {"question": QUESTION, "collection": "long", "adapter": "nope"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "'nope'" in detail and ADAPTER in detail


def test_a_collection_default_adapter_applies(ragqa_on_vllm, vllm):
    body = {"question": "Does ragqa need a GPU?", "collection": "tuned", "max_tokens": 16}
    response = post(ragqa_on_vllm, "/v1/ask", body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == ADAPTER
    other = post(ragqa_on_vllm, "/v1/ask", {**body, "collection": "long"})
    assert other.json()["model"] == vllm.model


def test_the_openai_route_uses_the_collection_default_adapter_too(ragqa_on_vllm, vllm):
    body = {"messages": [{"role": "user", "content": "Does ragqa need a GPU?"}], "max_tokens": 16}
    tuned = post(ragqa_on_vllm, "/v1/chat/completions", {**body, "model": "tuned"})
    assert tuned.status_code == 200, tuned.text
    assert tuned.json()["ragqa"]["llm_model"] == ADAPTER
    other = post(ragqa_on_vllm, "/v1/chat/completions", {**body, "model": "long"})
    assert other.json()["ragqa"]["llm_model"] == vllm.model
