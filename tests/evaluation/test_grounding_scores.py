"""The grounding fields of an eval record and their aggregates (docs/grounding.md)."""

from __future__ import annotations

from app.evaluation.dataset import EvalQuestion
from app.evaluation.scoring import aggregate_answers, score_answer


def reply(answer: str, source: str, citations=(), language="en", supported=None) -> dict:
    return {
        "answer": answer,
        "answer_source": source,
        "language": language,
        "citations": [{"id": 1, "sentence": s, "support": 1.0} for s in citations],
        "supported_share": supported,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        "timings_ms": {"retrieve": 1.0, "generate": 1.0, "total": 2.0},
    }


Q = EvalQuestion("q1", "When was it built?", ["1889"], "a.txt", True)
KO = EvalQuestion("q2", "우체통은 무슨 색인가요?", ["빨간색"], "b.txt", True)
NONE = EvalQuestion("q3", "Who won in 2050?", [], "a.txt", False)


def record(q: EvalQuestion, r: dict) -> dict:
    return {"answerable": q.answerable, "rag": score_answer(q, r)}


def test_citation_precision_language_and_sources():
    records = [
        record(Q, reply("It was built in 1889.", "quoted", ["It was built in 1889."])),
        record(Q, reply("Built in 1889 [1].", "generated", ["Paris is a city."], supported=0.5)),
        record(KO, reply("The mailbox is red.", "generated", ["우체통은 빨간색입니다."], "ko", 0.0)),
        record(NONE, reply("문서에 답이 없습니다.", "refused", language="ko")),
    ]
    assert records[0]["rag"]["cited_gold"] is True and records[1]["rag"]["cited_gold"] is False
    assert records[2]["rag"]["cited_gold"] is None  # no gold in the answer: not counted
    assert records[2]["rag"]["language_match"] is False and records[3]["rag"]["language_match"]
    agg = aggregate_answers(records, "rag")
    assert agg["citation_precision"] == 0.5
    assert agg["supported_share"] == 0.25
    assert agg["language_match"] == 0.75
    assert agg["answer_sources"] == {"generated": 2, "quoted": 1, "refused": 1}
    assert agg["confabulation_rate"] == 0.0  # the refusal is counted by answer_source
