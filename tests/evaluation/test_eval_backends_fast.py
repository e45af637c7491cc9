"""The in-process eval backend maps its questions as /v1/ask does (fast tier, with the fakes)."""

from __future__ import annotations

import asyncio

from app.evaluation.runner import EvalConfig, InProcessBackend
from app.llm.client import Adapter
from app.rag.prompts import PromptMode
from tests.fakes import FAKE_LLM_MODEL, FakeChatLLM, fake_services, fake_settings, ingest_samples

CONFIG = EvalConfig(collection="default", prompt_mode=PromptMode.one_shot, top_k=3, max_tokens=32)


def test_in_process_eval_uses_the_collections_adapter(tmp_path):
    """RAGQA_COLLECTION_ADAPTERS applies in-process as on /v1/ask (it was ignored before)."""
    ingest_samples(tmp_path)
    llm = FakeChatLLM(adapters=[Adapter("legal-lora", FAKE_LLM_MODEL, None)])
    settings = fake_settings(tmp_path, collection_adapters={"default": "legal-lora"})
    backend = InProcessBackend(fake_services(settings, llm))
    reply = asyncio.run(backend.ask("What is ragqa?", CONFIG, closed_book=False))
    assert reply["model"] == "legal-lora"
    assert [c["model"] for c in llm.calls] == ["legal-lora"]


def test_in_process_reply_has_the_http_replys_fields(tmp_path):
    ingest_samples(tmp_path)
    llm = FakeChatLLM()
    backend = InProcessBackend(fake_services(fake_settings(tmp_path, refusal_min_score=-1.0), llm))
    reply = asyncio.run(backend.ask("  What is ragqa?\n", CONFIG, closed_book=False))
    assert {"answer", "refused", "sources", "model", "usage", "timings_ms"} <= set(reply)
    assert reply["usage"]["completion_tokens"] > 0 and len(reply["sources"]) == 3
    # The question reaches the pipeline as written, as the in-process backend always sent it.
    assert "  What is ragqa?\n" in llm.calls[0]["messages"][-1]["content"]
    closed = asyncio.run(backend.ask("What is ragqa?", CONFIG, closed_book=True))
    assert closed["sources"] == [] and closed["mode"] == "closed_book"


def test_both_backends_send_the_same_request():
    from app.evaluation.runner import ask_fields

    fields = ask_fields("q?", CONFIG, closed_book=True)
    assert fields["mode"] == "closed_book" and "top_k" not in fields and fields["strategy"] == "direct"


def test_below_the_refusal_threshold_eval_records_a_refusal_without_generation(tmp_path):
    """The case tests/evaluation/test_eval_cli.py only checks when it happens: made certain."""
    from app.evaluation.dataset import EvalQuestion
    from app.evaluation.runner import evaluate_question

    ingest_samples(tmp_path)
    llm = FakeChatLLM()
    backend = InProcessBackend(fake_services(fake_settings(tmp_path, refusal_min_score=1.0), llm))
    question = EvalQuestion("q1", "What is ragqa?", ["a service"], "overview.md", True)
    record = asyncio.run(evaluate_question(backend, question, CONFIG))
    rag = record["rag"]
    assert rag["error"] is None and rag["refused"] and rag["completion_tokens"] == 0
    assert rag["top_score"] < 1.0 and rag["f1"] == 0.0
    assert llm.calls == []  # ragqa refused without asking the LLM
