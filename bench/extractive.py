"""Extractive answers: ragqa's sentence selector against the plain sentence picker, side by side.

    python -m bench.extractive ../shared/eval/squad-v1.1-dev tests/data/korean \\
        --index-dir /tmp/ragqa-bench/extractive --out extractive.json

Both rank the sentences of the same top-5 passages (ragqa's default hybrid retrieval), and both
answer with their first 1 or 2 sentences. The picker is the baseline the selector must beat: the cosine
between question and sentence plus half the share of the question's terms the sentence holds.
Per set and per number of sentences it reports, over answerable questions: contains-gold (the
answer holds a gold answer, ``app.evaluation.metrics.contains_gold``), mean answer words, and the
ceiling (some sentence of the five passages holds a gold answer), and the share of the questions
each RAGQA_QUOTE_MIN_SCORE would refuse. A dataset folder holds docs/
and questions.jsonl. ``--grid`` also scores a grid of selector weights and prints the best ones
for every set at once (how ``SELECTOR_WEIGHTS`` was chosen).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from app.core.embeddings import load_embedding_model
from app.core.store import IndexStore
from app.evaluation.metrics import contains_gold
from app.rag.evidence import PICKER_WEIGHTS, SELECTOR_WEIGHTS, Evidence, SentenceSelector
from app.rag.retrieval import RetrievalOptions, Retriever
from bench.retrieval import model_for_folder
from ingest.run import IngestJob
from ingest.splitting import TextSplitter

SENTENCE_COUNTS = (1, 2)


class CachedEmbedder:
    """Each distinct text is embedded once per model, across sets and reruns (an .npy per text)."""

    def __init__(self, embedder, cache_dir: Path):
        self.embedder = embedder
        self.model_id = embedder.model_id
        self.cache = cache_dir / hashlib.sha1(embedder.model_id.encode()).hexdigest()[:12]
        self.cache.mkdir(parents=True, exist_ok=True)
        self.memory: dict[str, np.ndarray] = {}

    def _path(self, text: str) -> Path:
        return self.cache / (hashlib.sha1(text.encode()).hexdigest() + ".npy")

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.memory]
        todo = []
        for t in missing:
            path = self._path(t)
            if path.exists():
                self.memory[t] = np.load(path)
            else:
                todo.append(t)
        if todo:
            for t, v in zip(todo, self.embedder.embed_documents(todo)):
                self.memory[t] = v
                np.save(self._path(t), v)
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([self.memory[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_query(text)


class OneCollection:
    def __init__(self, store: IndexStore, name: str):
        self.index = store.load(name)

    def get(self, name: str):
        return self.index


def read_questions(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [q for q in rows if q.get("answerable", True) and q.get("answers")]


def evidence_for(dataset: Path, args, embedder) -> list[tuple[dict, Evidence]]:
    store = IndexStore(args.index_dir / embedder.model_id.replace("/", "_"))
    name = dataset.name.replace(".", "-")
    IngestJob(store, embedder.embedder, TextSplitter(1000, 150)).run(dataset / "docs", name)
    retriever = Retriever(OneCollection(store, name), embedder, RetrievalOptions())
    questions = read_questions(dataset / "questions.jsonl")
    if args.limit:
        questions = questions[: args.limit]
    out = []
    for q in questions:
        passages = retriever.run(q["question"], name, 5)
        out.append((q, Evidence.build(q["question"], passages, embedder)))
    return out


def score(selector: SentenceSelector, items, k: int) -> dict:
    contained, words = [], []
    for q, evidence in items:
        answer = " ".join(s.text for s in selector.select(evidence, k))
        contained.append(contains_gold(answer, q["answers"]))
        words.append(len(answer.split()))
    return {
        "contains_gold": round(100 * sum(contained) / len(items), 1),
        "mean_words": round(statistics.mean(words), 1),
    }


# RAGQA_QUOTE_MIN_SCORE values whose cost on answerable questions the report gives.
QUOTE_THRESHOLDS = (0.3, 0.35, 0.4, 0.45)


def quote_threshold_refusals(selector: SentenceSelector, items) -> dict[str, float]:
    """Per quote threshold, the share of these (answerable) questions it would refuse: the
    selector's first sentence has a lower cosine with the question."""
    firsts = [
        evidence.question_cosine(chosen[0]) if (chosen := selector.select(evidence, 1)) else -1.0
        for _, evidence in items
    ]
    return {
        str(t): round(100 * sum(c < t for c in firsts) / len(firsts), 1) for t in QUOTE_THRESHOLDS
    }


def grid(sets: dict[str, list]) -> list[dict]:
    """Every combination on a small grid; cosine is fixed at 1 (only ratios matter)."""
    axes = {
        "coverage": (0.0, 0.5, 1.0),
        "word_share": (0.0, 0.5),
        "rank": (0.0, 0.1, 0.2),
        "passage_coverage": (0.0, 0.3),
        "length": (0.0, -0.1, -0.2),
    }
    rows = []
    for values in itertools.product(*axes.values()):
        weights = {"cosine": 1.0, **dict(zip(axes, values))}
        selector = SentenceSelector(weights)
        rows.append({
            "weights": weights,
            "gain_over_picker": {
                name: {k: score(selector, items, k)["contains_gold"] - picker[k]["contains_gold"]
                       for k in SENTENCE_COUNTS}
                for name, (items, picker) in sets.items()
            },
        })
    rows.sort(key=lambda r: -min(g for s in r["gain_over_picker"].values() for g in s.values()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", type=Path, nargs="+")
    parser.add_argument(
        "--embedding-model", help="default: the model `ragqa ingest` picks for each folder (its Hangul share)"
    )
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/ragqa-bench/extractive"))
    parser.add_argument("--limit", type=int, default=0, help="first N answerable questions only")
    parser.add_argument("--grid", action="store_true", help="also search selector weights")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    embedders: dict[str, CachedEmbedder] = {}
    picker, selector = SentenceSelector(PICKER_WEIGHTS), SentenceSelector()
    report: dict = {"selector_weights": SELECTOR_WEIGHTS, "sets": {}}
    kept = {}
    for dataset in args.datasets:
        started = time.perf_counter()
        model = args.embedding_model or model_for_folder(dataset / "docs")
        if model not in embedders:
            embedders[model] = CachedEmbedder(load_embedding_model(model), args.index_dir / "vectors")
        embedder = embedders[model]
        items = evidence_for(dataset, args, embedder)
        ceiling = sum(
            any(contains_gold(s.text, q["answers"]) for s in ev.sentences) for q, ev in items
        )
        row = {
            "embedding_model": embedder.model_id,
            "questions": len(items),
            "ceiling": round(100 * ceiling / len(items), 1),
            "picker": {k: score(picker, items, k) for k in SENTENCE_COUNTS},
            "selector": {k: score(selector, items, k) for k in SENTENCE_COUNTS},
            "quote_threshold_refusals_pct": quote_threshold_refusals(selector, items),
            "seconds": round(time.perf_counter() - started, 1),
        }
        report["sets"][dataset.name] = row
        kept[dataset.name] = (items, row["picker"])
        print(f"done {dataset.name}", file=sys.stderr)
    if args.grid:
        report["grid_top"] = grid(kept)[:10]

    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(f"\n{'set':<22} {'n':>4} {'ceiling':>7}  {'picker@1':>8} {'ours@1':>7} {'picker@2':>8} {'ours@2':>7}  words@1 p/o")
    for name, r in report["sets"].items():
        p, s = r["picker"], r["selector"]
        print(
            f"{name:<22} {r['questions']:>4} {r['ceiling']:>7}  {p[1]['contains_gold']:>8} "
            f"{s[1]['contains_gold']:>7} {p[2]['contains_gold']:>8} {s[2]['contains_gold']:>7}  "
            f"{p[1]['mean_words']}/{s[1]['mean_words']}"
        )


if __name__ == "__main__":
    main()
