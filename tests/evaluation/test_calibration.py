"""Replaying refusal thresholds on an eval report, on hand-made records."""

from __future__ import annotations

import pytest

from app.evaluation.calibration import CalibrationError, choose_threshold, refusal_curve, replay
from app.rag.prompts import REFUSAL


def record(qid, answers, answer, top_score, *, f1, refused=False):
    return {
        "id": qid,
        "answers": answers,
        "answerable": bool(answers),
        "rag": {
            "answer": answer,
            "refused": refused,
            "em": float(f1 == 1.0),
            "f1": f1,
            "contains_gold": f1 == 1.0,
            "top_score": top_score,
            "error": None,
            "prompt_tokens": 10,
            "completion_tokens": 0 if refused else 3,
            "timings_ms": {"retrieve": 1.0, "generate": 2.0, "total": 3.0},
        },
    }


def report(threshold=-1.0):
    return {
        "run": {"settings": {"refusal_min_score": threshold}},
        "questions": [
            record("a1", ["Paris"], "Paris", 0.60, f1=1.0),
            record("a2", ["blue"], "red", 0.30, f1=0.0),
            record("u1", [], "something", 0.50, f1=0.0),
            record("u2", [], REFUSAL, 0.20, f1=1.0, refused=True),  # the model refused by itself
            record("u3", [], "x", 0.25, f1=0.0),
        ],
    }


def at(curve, threshold):
    return next(c for c in curve if c["threshold"] == threshold)


def test_replay_refuses_below_the_threshold_only():
    a1 = report()["questions"][0]
    assert replay(a1, 0.6) is a1["rag"]  # not below: the model's answer stands
    refused = replay(a1, 0.61)
    assert refused["refused"] and refused["answer"] == REFUSAL
    assert refused["f1"] == 0.0 and refused["em"] == 0.0 and not refused["contains_gold"]


def test_curve_by_hand():
    curve = refusal_curve(report(), [0.3, 0.325, 0.525, 0.625])
    off = curve[0]
    assert off["threshold"] == -1.0
    assert off["f1"] == pytest.approx(0.5)  # a1 right, a2 wrong
    assert off["confabulation_rate"] == pytest.approx(2 / 3)  # u1 and u3 answered
    assert off["refused_without_llm"] == 0.0
    # 0.3: u3 (0.25) refused; a2 sits exactly on the threshold and is still answered
    assert at(curve, 0.3)["confabulation_rate"] == pytest.approx(1 / 3)
    assert at(curve, 0.3)["false_refusal_rate"] == 0.0
    assert at(curve, 0.325)["false_refusal_rate"] == pytest.approx(0.5)
    assert at(curve, 0.325)["f1"] == pytest.approx(0.5)  # a2 was wrong anyway
    assert at(curve, 0.525)["confabulation_rate"] == 0.0
    assert at(curve, 0.525)["correct_refusal_rate"] == 1.0
    assert at(curve, 0.625)["f1"] == 0.0  # a1 refused too
    assert at(curve, 0.625)["refused_without_llm"] == 1.0


def test_choose_threshold_keeps_f1_within_the_budget():
    curve = refusal_curve(report(), [0.3, 0.325, 0.525, 0.625])
    chosen = choose_threshold(curve, max_f1_cost=0.05, any_model=False)
    # 0.625 also has no confabulation but costs all the F1; 0.525 is the first with none.
    assert chosen["threshold"] == 0.525
    assert choose_threshold(curve, max_f1_cost=1.0, any_model=False)["threshold"] == 0.525  # F1 breaks the tie


def test_any_model_bounds_the_false_refusals_too():
    curve = refusal_curve(report(), [0.3, 0.325, 0.525, 0.625])
    # From 0.325 on, a2 is refused: free for this model (it was wrong), but half the answerable
    # questions, which a model that got it right would lose.
    assert choose_threshold(curve, max_f1_cost=0.05)["threshold"] == 0.3
    assert choose_threshold(curve, max_f1_cost=0.5)["threshold"] == 0.525


def test_thresholds_below_the_run_are_not_replayed():
    curve = refusal_curve(report(threshold=0.3), [0.1, 0.3, 0.4])
    assert [c["threshold"] for c in curve] == [0.3, 0.4]


def test_a_report_without_top_scores_cannot_be_calibrated():
    body = report()
    body["questions"][0]["rag"]["top_score"] = None
    with pytest.raises(CalibrationError, match="top_score"):
        refusal_curve(body)
    with pytest.raises(CalibrationError, match="no RAG answers"):
        refusal_curve({"run": {}, "questions": [{"id": "q", "retrieval": {}}]})


def test_calibrating_needs_unanswerable_questions():
    body = report()
    body["questions"] = [q for q in body["questions"] if q["answerable"]]
    with pytest.raises(CalibrationError, match="unanswerable"):
        choose_threshold(refusal_curve(body))
