"""Scoring: one question's retrieval and answer, and the aggregates over a run."""

from __future__ import annotations

from typing import Any

from app.evaluation import metrics
from app.evaluation.dataset import EvalQuestion
from app.rag.language import Language, is_in_language
from app.rag.prompts import is_refusal

# Retrieval is scored to this depth whatever top_k the answers use: hit@1..10 and MRR@10.
RETRIEVAL_DEPTH = 10
PASSAGE_HIT_K = 5


def score_retrieval(q: EvalQuestion, passages: list[dict]) -> dict:
    """hit@k, MRR@10, passage hit@5 and nDCG@10 of the passages retrieved for one question."""
    docs = [p["doc"] for p in passages]
    relevant = q.relevant_docs
    return {
        "retrieved": [{k: p[k] for k in ("id", "doc", "score", "rank")} for p in passages],
        # Passage rank of the first chunk of a relevant document; None if not in the top 10.
        "first_relevant_rank": metrics.first_relevant_rank(docs, relevant, RETRIEVAL_DEPTH),
        "mrr": metrics.reciprocal_rank(docs, relevant, RETRIEVAL_DEPTH),
        "passage_hit_at_5": (
            metrics.passage_hit([(p["doc"], p["text"]) for p in passages[:PASSAGE_HIT_K]], q.doc, q.answers)
            if q.answerable and q.doc
            else None
        ),
        "ndcg_at_10": (
            metrics.ndcg_at_k(docs, q.relevance, RETRIEVAL_DEPTH, [p["score"] for p in passages])
            if q.relevance is not None
            else None
        ),
        "error": None,
    }


def score_answer(q: EvalQuestion, reply: dict) -> dict:
    answer = reply["answer"]
    source = reply.get("answer_source")
    refused = source == "refused" if source else is_refusal(answer)
    contains = q.answerable and not refused and metrics.contains_gold(answer, q.answers)
    citations = reply.get("citations") or []
    language = reply.get("language")
    # A refusal is the empty prediction of SQuAD v2.0's scoring.
    prediction = "" if refused else answer
    golds = q.answers if q.answerable else [""]
    return {
        "answer": answer,
        "refused": refused,
        "em": metrics.max_over_golds(metrics.exact_match, prediction, golds),
        "f1": metrics.max_over_golds(metrics.token_f1, prediction, golds),
        "contains_gold": contains,
        "answer_source": source,
        "answer_words": len(answer.split()),
        "citations": [{k: c[k] for k in ("id", "sentence", "support")} for c in citations],
        # Of an answer holding a gold answer: does a cited sentence hold it too?
        "cited_gold": (
            any(metrics.contains_gold(c["sentence"], q.answers) for c in citations)
            if contains
            else None
        ),
        "supported_share": reply.get("supported_share"),
        "language": language,
        "language_match": (
            is_in_language(answer, Language(language)) if language else None
        ),
        "sources": [{k: s[k] for k in ("id", "doc", "score", "relevance", "rank")} for s in reply.get("sources", [])],
        "model": reply.get("model"),
        "prompt_tokens": reply["usage"]["prompt_tokens"],
        "completion_tokens": reply["usage"]["completion_tokens"],
        "timings_ms": reply["timings_ms"],
        # rag: the best retrieved similarity, to replay other refusal thresholds offline.
        "top_score": reply.get("top_score"),
        "reasoning": reply.get("reasoning"),
        "step_back_question": reply.get("step_back_question"),
        "error": None,
    }


def failed(exc: Exception) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}"}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _rate(flags: list[bool]) -> float | None:
    return _mean([float(f) for f in flags])


def aggregate_retrieval(records: list[dict]) -> dict:
    ok = [r["retrieval"] for r in records if r["retrieval"].get("error") is None]
    passage = [r["passage_hit_at_5"] for r in ok if r["passage_hit_at_5"] is not None]
    ndcg = [r["ndcg_at_10"] for r in ok if r["ndcg_at_10"] is not None]
    with_relevant = [
        r["retrieval"]
        for r in records
        if r["retrieval"].get("error") is None and (r["relevance"] is not None or r["doc"])
    ]
    return {
        "questions": len(with_relevant),
        "errors": len(records) - len(ok),
        "hit_at": {
            str(k): _rate(
                [
                    r["first_relevant_rank"] is not None and r["first_relevant_rank"] <= k
                    for r in with_relevant
                ]
            )
            for k in range(1, RETRIEVAL_DEPTH + 1)
        },
        "mrr_at_10": _mean([r["mrr"] for r in with_relevant]),
        "passage_hit_at_5": _rate(passage),
        "ndcg_at_10": _mean(ndcg),
    }


def _latency(values: list[float]) -> dict:
    return {"p50": metrics.percentile(values, 50), "p95": metrics.percentile(values, 95)}


def aggregate_answers(records: list[dict], side: str) -> dict:
    ok = [r for r in records if side in r and r[side].get("error") is None]
    answerable = [r for r in ok if r["answerable"]]
    unanswerable = [r for r in ok if not r["answerable"]]
    replies = [r[side] for r in ok]
    return {
        "questions": len(ok),
        "errors": len([r for r in records if side in r]) - len(ok),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        # EM and F1 over answerable questions (a refusal there scores 0).
        "em": _mean([r[side]["em"] for r in answerable]),
        "f1": _mean([r[side]["f1"] for r in answerable]),
        "contains_gold": _rate([r[side]["contains_gold"] for r in answerable]),
        "false_refusal_rate": _rate([r[side]["refused"] for r in answerable]),
        "correct_refusal_rate": _rate([r[side]["refused"] for r in unanswerable]),
        "confabulation_rate": _rate([not r[side]["refused"] for r in unanswerable]),
        # Grounding: among answers holding a gold answer, the share whose citations
        # hold it too; supported sentences of generated answers; answers in the question's language.
        "citation_precision": _rate(
            [x["cited_gold"] for x in replies if x.get("cited_gold") is not None]
        ),
        "supported_share": _mean(
            [x["supported_share"] for x in replies if x.get("supported_share") is not None]
        ),
        "language_match": _rate(
            [x["language_match"] for x in replies if x.get("language_match") is not None]
        ),
        "answer_sources": {
            name: sum(x.get("answer_source") == name for x in replies)
            for name in ("generated", "quoted", "refused")
        },
        "mean_answer_words": _mean([x.get("answer_words", 0) for x in replies]),
        "latency_ms": {
            stage: _latency([x["timings_ms"][stage] for x in replies])
            for stage in ("retrieve", "generate", "total")
        },
        "tokens": {
            "prompt": sum(x["prompt_tokens"] for x in replies),
            "completion": sum(x["completion_tokens"] for x in replies),
        },
    }


DIFF_KEYS = ("em", "f1", "contains_gold", "false_refusal_rate", "correct_refusal_rate", "confabulation_rate")


def aggregate(records: list[dict]) -> dict:
    out: dict[str, Any] = {"retrieval": aggregate_retrieval(records)}
    if any("rag" in r for r in records):
        out["rag"] = aggregate_answers(records, "rag")
    if any("closed_book" in r for r in records):
        out["closed_book"] = aggregate_answers(records, "closed_book")
        out["rag_minus_closed_book"] = {
            key: (
                out["rag"][key] - out["closed_book"][key]
                if out["rag"][key] is not None and out["closed_book"][key] is not None
                else None
            )
            for key in DIFF_KEYS
        }
    return out
