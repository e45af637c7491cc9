"""Retrieval quality and latency per setting, on the same questions: prints JSON, then a table.

    PYTHONPATH=. python bench/retrieval.py ../shared/eval/squad-v1.1-dev \\
        --setting dense --setting bm25 --setting hybrid@0.5 --setting hybrid@0.5+mmr0.3

A dataset folder holds docs/ and questions.jsonl (id, question, answers, doc[, answerable]).
A setting is MODE[@DENSE_WEIGHT][+mmrDIVERSITY], MODE one of dense, bm25, hybrid.
Metrics: hit@k = a passage of the gold document among the first k; MRR over the first 10;
passage hit@5 = one of the first 5 passages is from the gold document and contains a gold
answer (answerable questions only); p50 = median time of one Retriever.run, query embedding
included (each question is embedded once and its embedding time added to every setting), in wall
time and in the process's CPU time (which a busy shared machine distorts less).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.core.embeddings import load_embedding_model
from app.core.lexical import DEFAULT_TOKENIZER, KIWI_TOKENIZER, WHITESPACE_TOKENIZER, LexicalIndex
from app.core.store import CollectionIndex, IndexStore
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever
from ingest.run import IngestJob
from ingest.splitting import TextSplitter

TOKENIZERS = {"kiwi": KIWI_TOKENIZER, "whitespace": WHITESPACE_TOKENIZER}
SETTING_RE = re.compile(r"^(dense|bm25|hybrid)(?:@([0-9.]+))?(?:\+mmr([0-9.]+))?$")


class CachedQueries:
    """Wraps the embedder so each question is embedded once for all settings; remembers the time."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.model_id = embedder.model_id
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._vectors: dict[str, object] = {}

    def embed_query(self, text: str):
        if text not in self._vectors:
            started, cpu = time.perf_counter(), time.process_time()
            self._vectors[text] = self.embedder.embed_query(text)
            self.seconds[text] = time.perf_counter() - started
            self.cpu_seconds[text] = time.process_time() - cpu
        return self._vectors[text]


class OneCollection:
    """Stands in for CollectionCache: always the same loaded collection."""

    def __init__(self, index: CollectionIndex):
        self.index = index

    def get(self, name: str) -> CollectionIndex:
        return self.index


def read_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def parse_setting(spec: str, candidates: int) -> RetrievalOptions:
    match = SETTING_RE.match(spec)
    if not match:
        raise SystemExit(f"bad setting {spec!r}: use MODE[@DENSE_WEIGHT][+mmrDIVERSITY]")
    mode, weight, diversity = match.groups()
    return RetrievalOptions(
        mode=RetrievalMode(mode),
        dense_weight=float(weight) if weight else RetrievalOptions().dense_weight,
        diversity=float(diversity) if diversity else 0.0,
        candidates=candidates,
    )


def evaluate(retriever: Retriever, questions: list[dict], options: RetrievalOptions) -> dict:
    """Metrics over ``questions``. With CachedQueries, latency = search + that question's embedding."""
    hits = {1: 0, 5: 0, 10: 0}
    reciprocal = 0.0
    passage_hits = answerable = 0
    latencies, cpu_times = [], []
    cached = isinstance(retriever.embedder, CachedQueries)
    for q in questions:
        if cached:
            retriever.embedder.embed_query(q["question"])  # outside the timed run; added below
        started, cpu = time.perf_counter(), time.process_time()
        passages = retriever.run(q["question"], "bench", 10, options)
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        if cached:
            elapsed += retriever.embedder.seconds[q["question"]]
            cpu_used += retriever.embedder.cpu_seconds[q["question"]]
        latencies.append(elapsed)
        cpu_times.append(cpu_used)
        docs = [p.doc for p in passages]
        for k in hits:
            hits[k] += q["doc"] in docs[:k]
        if q["doc"] in docs:
            reciprocal += 1.0 / (docs.index(q["doc"]) + 1)
        if q.get("answerable", True) and q["answers"]:
            answerable += 1
            answers = [a.lower() for a in q["answers"]]
            passage_hits += any(
                p.doc == q["doc"] and any(a in p.text.lower() for a in answers) for p in passages[:5]
            )
    n = len(questions)
    return {
        **{f"hit@{k}": round(v / n, 4) for k, v in hits.items()},
        "mrr": round(reciprocal / n, 4),
        "passage_hit@5": round(passage_hits / answerable, 4) if answerable else None,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        # CPU time of the process (all threads): comparable when the machine is shared and busy.
        "p50_cpu_ms": round(statistics.median(cpu_times) * 1000, 2),
        "questions": n,
    }


def markdown_table(report: dict) -> str:
    """The results as a Markdown table (docs/retrieval.md is made of these)."""
    lines = [
        "| setting | hit@1 | hit@5 | hit@10 | MRR | passage hit@5 | p50 ms | p50 CPU ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec, r in report["results"].items():
        ph = "-" if r["passage_hit@5"] is None else f"{r['passage_hit@5']:.3f}"
        cpu = f"{r['p50_cpu_ms']:.0f}" if "p50_cpu_ms" in r else "-"
        lines.append(
            f"| {spec} | {r['hit@1']:.3f} | {r['hit@5']:.3f} | {r['hit@10']:.3f} | {r['mrr']:.3f} "
            f"| {ph} | {r['p50_ms']:.0f} | {cpu} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--setting", action="append", help="repeatable; default: the four main ones")
    parser.add_argument("--embedding-model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--tokenizer", choices=sorted(TOKENIZERS), default="kiwi")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--chunk-overlap", type=int, default=150)
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--limit", type=int, default=0, help="first N questions only")
    parser.add_argument("--index-dir", type=Path, help="keep the ingested index here (reused when it matches)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--markdown", action="store_true", help="end with a Markdown table")
    args = parser.parse_args()

    settings = args.setting or ["dense", "bm25", "hybrid@0.5", "hybrid@0.5+mmr0.3"]
    questions = read_questions(args.dataset / "questions.jsonl")
    if args.limit:
        questions = questions[: args.limit]

    embedder = load_embedding_model(args.embedding_model)
    index_dir = args.index_dir or Path(tempfile.mkdtemp(prefix="ragqa-bench-"))
    store = IndexStore(index_dir)
    started = time.perf_counter()
    summary = IngestJob(store, embedder, TextSplitter(args.chunk_size, args.chunk_overlap)).run(
        args.dataset / "docs", "bench"
    )
    ingest_s = time.perf_counter() - started
    index = store.load("bench")
    if TOKENIZERS[args.tokenizer] != DEFAULT_TOKENIZER:
        index.lexical = LexicalIndex.build(
            ((c.id, c.text) for c in index.chunks.values()), TOKENIZERS[args.tokenizer]
        )
    retriever = Retriever(OneCollection(index), CachedQueries(embedder))
    retriever.run("warm up", "bench", 10, RetrievalOptions(mode=RetrievalMode.hybrid))

    report = {
        "dataset": str(args.dataset),
        "embedding_model": embedder.model_id,
        "tokenizer": TOKENIZERS[args.tokenizer],
        "chunk_size": args.chunk_size,
        "chunk_overlap": args.chunk_overlap,
        "candidates": args.candidates,
        "chunks": summary.chunks,
        "ingest_seconds": round(ingest_s, 1),
        "results": {},
    }
    for spec in settings:
        report["results"][spec] = evaluate(retriever, questions, parse_setting(spec, args.candidates))
        print(f"done {spec}", file=sys.stderr)

    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.markdown:
        print("\n" + markdown_table(report))
        return
    print(f"\n{args.dataset.name}  {embedder.model_id}  tokenizer={args.tokenizer}  {summary.chunks} chunks")
    print(f"{'setting':<22} {'hit@1':>6} {'hit@5':>6} {'hit@10':>6} {'MRR':>6} {'p.hit@5':>7} {'p50 ms':>7} {'cpu ms':>7}")
    for spec, r in report["results"].items():
        ph = "-" if r["passage_hit@5"] is None else f"{r['passage_hit@5']:.3f}"
        print(
            f"{spec:<22} {r['hit@1']:>6.3f} {r['hit@5']:>6.3f} {r['hit@10']:>6.3f} "
            f"{r['mrr']:>6.3f} {ph:>7} {r['p50_ms']:>7.1f} {r['p50_cpu_ms']:>7.1f}"
        )


if __name__ == "__main__":
    main()
