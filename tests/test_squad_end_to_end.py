"""The whole service over HTTP, as a user runs it: `ragqa serve` with the embedded LLM,
over squad-v1.1-dev's 40 documents. Floors are what was measured (see the README)."""

from __future__ import annotations

import statistics

import httpx
import pytest

from app.core.config import Settings
from app.core.store import IndexStore
from app.rag.prompts import REFUSAL
from tests.conftest import SQUAD11, read_questions

pytestmark = pytest.mark.slow

# Measured on 2026-11-29 with all-MiniLM-L6-v2 and 1000/150 chunks: hit@5 = 290/300 (0.967)
# dense, 294/300 (0.980) hybrid (the default).
RETRIEVAL_HIT_AT_5_FLOOR = 0.95
# Measured with the defaults (hybrid retrieval, one-shot, SmolLM2-135M, temperature 0):
# 3 of these 20 answers contain a gold string (dense retrieval: 6), and 2 answerable
# questions were refused without asking the LLM (RAGQA_REFUSAL_MIN_SCORE 0.35; the default is
# now 0.325, which can only refuse fewer).
ANSWERS_CONTAINING_GOLD_FLOOR = 3
REFUSED_UNASKED_CEILING = 2


@pytest.fixture(scope="module")
def questions():
    return read_questions(SQUAD11 / "questions.jsonl")


def test_retrieve_finds_the_gold_document(squad_server, questions):
    hits = 0
    with httpx.Client(base_url=squad_server.url, timeout=30) as client:
        for q in questions:
            response = client.post(
                "/v1/retrieve", json={"question": q["question"], "collection": "squad", "top_k": 5}
            )
            assert response.status_code == 200, response.text
            passages = response.json()["passages"]
            assert len(passages) == 5
            hits += q["doc"] in {p["doc"] for p in passages}
    hit_rate = hits / len(questions)
    print(f"retrieval hit@5 on squad-v1.1-dev: {hits}/{len(questions)} = {hit_rate:.3f}")
    assert hit_rate >= RETRIEVAL_HIT_AT_5_FLOOR


def test_ask_answers_from_stored_chunks(squad_server, squad_index, questions):
    fixed = questions[::15][:20]
    chunks = IndexStore(squad_index).load("squad").chunks
    containing_gold, refused_unasked, latencies = 0, 0, []
    with httpx.Client(base_url=squad_server.url, timeout=300) as client:
        for q in fixed:
            response = client.post("/v1/ask", json={"question": q["question"], "collection": "squad", "mode": "rag"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["answer"].strip()
            if body["usage"]["completion_tokens"] == 0:
                # RAGQA_REFUSAL_MIN_SCORE: no passage was close enough, so the LLM was not asked.
                assert body["answer"] == REFUSAL and body["refused"] and not body["grounded"]
                assert max(s["relevance"] for s in body["sources"]) < Settings().refusal_min_score
                refused_unasked += 1
            else:
                assert body["usage"]["prompt_tokens"] > 0
            assert body["prompt_mode"] == "one_shot"
            assert body["sources"], "the model saw no passage"
            for source in body["sources"]:
                stored = chunks[source["id"]]
                assert (source["doc"], source["text"]) == (stored.doc, stored.text)
            containing_gold += any(a.lower() in body["answer"].lower() for a in q["answers"])
            latencies.append(body["timings_ms"]["total"])
    print(
        f"answers containing a gold string: {containing_gold}/{len(fixed)}; "
        f"refused without asking the LLM: {refused_unasked}; "
        f"p50 /v1/ask {statistics.median(latencies):.0f} ms"
    )
    assert containing_gold >= ANSWERS_CONTAINING_GOLD_FLOOR
    assert refused_unasked <= REFUSED_UNASKED_CEILING


def test_max_tokens_caps_the_answer(squad_server):
    response = httpx.post(
        f"{squad_server.url}/v1/ask",
        json={"question": "Describe the Normans in detail.", "collection": "squad", "max_tokens": 5, "mode": "rag"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert 0 < response.json()["usage"]["completion_tokens"] <= 5


def test_many_passages_are_packed_into_the_context_window(squad_server):
    response = httpx.post(
        f"{squad_server.url}/v1/ask",
        json={
            "question": "What did the Normans do?",
            "collection": "squad",
            "top_k": 50,
            "max_tokens": 2048,
            "mode": "rag",
        },
        timeout=300,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["passages_dropped"] > 0 and len(body["sources"]) + body["passages_dropped"] == 50
    assert body["usage"]["prompt_tokens"] + 2048 <= 4096
    assert [s["rank"] for s in body["sources"]] == list(range(1, len(body["sources"]) + 1))


def test_a_question_too_long_for_the_window_is_a_422(squad_server):
    question = "노르만족은 " * 660  # 3,960 characters, about 8,000 SmolLM2 tokens
    response = httpx.post(
        f"{squad_server.url}/v1/ask", json={"question": question, "collection": "squad"}, timeout=60
    )
    assert response.status_code == 422
    assert "context" in response.json()["detail"]


def test_readyz_is_ready(squad_server):
    response = httpx.get(f"{squad_server.url}/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json()["llm"] == "reachable"


def test_reloaded_index_gives_identical_results(squad_index, embedder):
    first = IndexStore(squad_index).load("squad")
    second = IndexStore(squad_index).load("squad")
    assert second is not first
    for question in ("Who were the Normans?", "What is a prime number?", "Where is Fresno?"):
        vector = embedder.embed_query(question)
        a = [(h.chunk.id, h.score) for h in first.search(vector, 10)]
        b = [(h.chunk.id, h.score) for h in second.search(vector, 10)]
        assert a == b
    assert not [p for p in squad_index.rglob("*") if p.suffix in {".pkl", ".pickle"}]
