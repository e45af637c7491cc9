"""`ragqa eval-table`: one row per report, optionally on the questions all reports share."""

from __future__ import annotations

import pytest

from app.evaluation.report import comparison, restricted
from app.evaluation.runner import aggregate


def record(qid, f1):
    return {
        "id": qid,
        "answers": ["x"],
        "answerable": True,
        "doc": "d",
        "relevance": None,
        "retrieval": {
            "error": None,
            "first_relevant_rank": 1,
            "mrr": 1.0,
            "passage_hit_at_5": True,
            "ndcg_at_10": None,
        },
        "rag": {
            "answer": "x" if f1 else "y",
            "refused": False,
            "em": f1,
            "f1": f1,
            "contains_gold": bool(f1),
            "top_score": 0.5,
            "error": None,
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "timings_ms": {"retrieve": 1.0, "generate": 1.0, "total": 2.0},
        },
    }


def report(prompt_mode, records):
    run = {
        "questions_file": "/x/squad-v1.1-dev/questions.jsonl",
        "settings": {"exemplar_selection": "fixed"},
        "config": {"prompt_mode": prompt_mode, "strategy": "direct"},
    }
    return {"run": run, "aggregate": aggregate(records), "questions": records}


def test_restricted_recomputes_the_aggregates():
    full = report("one_shot", [record("a", 1.0), record("b", 0.0), record("c", 0.0)])
    part = restricted(full, {"a", "b"})
    assert [r["id"] for r in part["questions"]] == ["a", "b"]
    assert part["aggregate"]["rag"]["f1"] == pytest.approx(0.5)
    assert part["aggregate"]["rag"]["questions"] == 2


def test_comparison_rows_and_shared_questions():
    full = report("one_shot", [record("a", 1.0), record("b", 0.0), record("c", 0.0), record("d", 0.0)])
    sample = report("zero_shot", [record("a", 0.0), record("c", 1.0)])
    rows = comparison([full, sample], same_questions=True).splitlines()[2:]
    assert len(rows) == 2
    one, zero = (r.split(" | ") for r in rows)
    assert one[1:4] == ["one_shot", "direct", "2"] and one[5] == "50.0"  # a=1, c=0 of the full run
    assert zero[1:4] == ["zero_shot", "direct", "2"] and zero[5] == "50.0"
    unshared = comparison([full]).splitlines()[2].split(" | ")
    assert unshared[3] == "4" and unshared[5] == "25.0"
