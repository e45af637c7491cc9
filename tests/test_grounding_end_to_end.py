"""Grounded answers against the real models: `ragqa serve` with MiniLM and the bundled SmolLM2."""

from __future__ import annotations

import json

import httpx
import pytest

from app.evaluation.metrics import contains_gold
from tests.conftest import SQUAD11, read_questions, start_server, stop_server

pytestmark = pytest.mark.slow

HANGUL = range(0xAC00, 0xD7A4)


def has_hangul(text: str) -> bool:
    return any(ord(ch) in HANGUL for ch in text)


def check_citations(body: dict) -> None:
    texts = {s["id"]: s["text"] for s in body["sources"]}
    for c in body["citations"]:
        assert texts[c["id"]][c["sentence_start"]:c["sentence_end"]] == c["sentence"]
        assert 0.0 <= c["support"] <= 1.0


def ask(url: str, **body) -> dict:
    response = httpx.post(f"{url}/v1/ask", json=body, timeout=600)
    assert response.status_code == 200, response.text
    return response.json()


def test_default_mode_quotes_cited_evidence_that_often_holds_the_gold(squad_server):
    questions = read_questions(SQUAD11 / "questions.jsonl")[:10]
    hits = 0
    for q in questions:
        body = ask(squad_server.url, question=q["question"], collection="squad")
        assert body["mode"] == "extractive" and body["usage"]["completion_tokens"] == 0
        if body["answer_source"] == "refused":
            continue
        assert body["answer_source"] == "quoted" and body["grounded"] and body["citations"]
        check_citations(body)
        hits += contains_gold(body["answer"], q["answers"])
    # The picker baseline holds a gold answer in its top two sentences for most SQuAD
    # questions; half of ten is far below what bench/extractive.py measures.
    assert hits >= 5


def test_generated_answer_is_checked_and_the_stream_agrees(squad_server):
    q = read_questions(SQUAD11 / "questions.jsonl")[0]
    body = ask(squad_server.url, question=q["question"], collection="squad", mode="rag")
    assert body["mode"] == "rag" and body["answer_source"] in ("generated", "quoted", "refused")
    check_citations(body)
    if body["answer_source"] == "quoted":
        assert body["generated_answer"] and body["generated_answer"] != body["answer"]
    events = []
    with httpx.stream(
        "POST", f"{squad_server.url}/v1/ask", timeout=600,
        json={"question": q["question"], "collection": "squad", "mode": "rag", "stream": True},
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    done = events[-1]
    assert done["answer"] == body["answer"] and done["answer_source"] == body["answer_source"]
    assert done["citations"] == body["citations"]


@pytest.fixture(scope="module")
def sample_server(sample_index, tmp_path_factory):
    server = start_server(sample_index, tmp_path_factory.mktemp("logs") / "serve.log")
    yield server
    stop_server(server)


@pytest.mark.parametrize("mode", ["extractive", "rag"])
def test_korean_question_gets_a_korean_answer_from_korean_md(sample_server, mode):
    body = ask(sample_server.url, question="ragqa는 한국어 문서를 어떻게 검색하나요?", mode=mode)
    assert body["language"] == "ko"
    assert has_hangul(body["answer"]), body["answer"]
    if body["answer_source"] == "quoted":
        assert {c["id"] for c in body["citations"]} <= {s["id"] for s in body["sources"]}
        assert any(s["doc"] == "korean.md" for s in body["sources"])
