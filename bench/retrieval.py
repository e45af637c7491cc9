"""Retrieval quality of ragqa and of two peers on the same folders and questions: JSON, then a table.

    PYTHONPATH=. python bench/retrieval.py ../shared/eval/squad-v1.1-dev            # ragqa + 6 peers
    PYTHONPATH=. python bench/retrieval.py tests/data/korean --pipeline ragqa --setting bm25

A dataset folder holds docs/ and questions.jsonl (id, question, answers, doc[, answerable]), and
optionally qrels.tsv (BEIR style) for nDCG@10.

Pipelines (``--pipeline``, repeatable; default all): ``ragqa`` (its defaults from Settings, so
``RAGQA_*`` env vars apply), ``langchain-{dense,bm25,hybrid}`` (the textbook LangChain pipeline) and
``haystack-{dense,bm25,hybrid}`` (Haystack 2.x defaults; needs ``pip install -e '.[bench]'``); both
peers are described in bench/peers.py and use all-MiniLM-L6-v2. ``--setting`` adds ragqa variants,
MODE[@DENSE_WEIGHT][+mmrDIVERSITY][/cCANDIDATES][/chunk] with MODE one of dense, bm25, hybrid (candidates
per ranking: ``--candidates`` unless given; ``/chunk``: dense candidates ranked by the chunk's cosine
alone, not by their best sentence too, as before sentence vectors). ``--chunk-header`` and
``--chunk-size``/``--chunk-overlap`` set ragqa's splitter (defaults: RAGQA_CHUNK_HEADER, _SIZE, _OVERLAP);
``--splitter textbook`` makes ragqa split as the textbook LangChain peer does (its default separators:
paragraphs, lines, spaces, no sentence ends), to tell chunking from fusion apart.

Metrics, all from app/evaluation/metrics.py, ranks counting passages: doc hit@k (a passage of the
gold document among the first k), passage hit@5 (one of the first 5 passages is from the gold
document and holds a gold answer; answerable questions only), MRR@10, nDCG@10 (deduplicated
documents; only where the set has qrels). p50 = median time of one search, in wall time and in
the process's CPU time (which a busy shared machine distorts less). Document and query vectors are
cached on disk ($RAGQA_BENCH_CACHE, default /tmp/ragqa-bench-cache), so a rerun encodes nothing:
p50 counts a cache lookup, not the query embedding (MiniLM: ~15-35 ms CPU, docs/retrieval.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import get_args

# Run as a script, bench/ comes first on sys.path and bench/ingest.py would shadow the ingest package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.config import EmbeddingBackend, Settings  # noqa: E402
from app.core.embeddings import load_embedding_model  # noqa: E402
from app.core.lexical import DEFAULT_TOKENIZER, KIWI_TOKENIZER, WHITESPACE_TOKENIZER, LexicalIndex  # noqa: E402
from app.core.store import HEADER_RULES, CollectionIndex, IndexStore, indexed_text  # noqa: E402
from app.evaluation import metrics  # noqa: E402
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever  # noqa: E402
from ingest.loaders import SkipDocument  # noqa: E402
from ingest.run import IngestJob, PreparationWork, prepare_document, skip_reason  # noqa: E402
from ingest.splitting import TextSplitter  # noqa: E402

PEERS = [f"{peer}-{mode}" for peer in ("langchain", "haystack") for mode in ("dense", "bm25", "hybrid")]
PIPELINES = ["ragqa", *PEERS]

TOKENIZERS = {"kiwi": KIWI_TOKENIZER, "whitespace": WHITESPACE_TOKENIZER}
SETTING_RE = re.compile(r"^(dense|bm25|hybrid)(?:@([0-9.]+))?(?:\+mmr([0-9.]+))?(?:/c([0-9]+))?(/chunk)?$")


class TextbookSplitter(TextSplitter):
    """ragqa's splitter with LangChain's default separators (paragraphs, lines, spaces), as the
    textbook peer splits; chunk size and overlap as given. Bench only: ingest never splits so."""

    def __init__(self, chunk_size: int, chunk_overlap: int, header: str | None = None):
        super().__init__(chunk_size, chunk_overlap, header)
        self.info = self.info.model_copy(update={"name": "langchain_recursive_default"})

    @cached_property
    def _splitter(self):
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        return RecursiveCharacterTextSplitter(
            chunk_size=self.info.chunk_size, chunk_overlap=self.info.chunk_overlap, add_start_index=True
        )


SPLITTERS = {"ragqa": TextSplitter, "textbook": TextbookSplitter}


def prepare_with(splitter: TextSplitter):
    """ingest.run.prepare_locally with this splitter object (which rebuilds ragqa's splitter from
    the run's SplitterInfo, and so would never split as TextbookSplitter does)."""

    def prepare(work: PreparationWork):
        for rel, path in work.documents:
            try:
                yield rel, prepare_document(rel, path, splitter, work.max_file_bytes)
            except (SkipDocument, OSError) as exc:
                yield rel, skip_reason(exc) or str(exc)

    return prepare


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
        raise SystemExit(f"bad setting {spec!r}: use MODE[@DENSE_WEIGHT][+mmrDIVERSITY][/cCANDIDATES][/chunk]")
    mode, weight, diversity, per_ranking, chunk_only = match.groups()
    return RetrievalOptions(
        mode=RetrievalMode(mode),
        dense_weight=float(weight) if weight else RetrievalOptions().dense_weight,
        diversity=float(diversity) if diversity else 0.0,
        candidates=int(per_ranking) if per_ranking else candidates,
        sentence_scoring=not chunk_only,
    )


def read_qrels(dataset: Path) -> dict[str, dict[str, float]] | None:
    """``qrels.tsv`` (BEIR style: query-id, corpus-id, score; a header line) if the set has one."""
    path = dataset / "qrels.tsv"
    if not path.is_file():
        return None
    qrels: dict[str, dict[str, float]] = {}
    for line in path.read_text("utf-8").splitlines()[1:]:
        if line.strip():
            qid, doc, rel = line.split("\t")
            qrels.setdefault(qid, {})[doc] = float(rel)
    return qrels


def score(
    search: Callable[[str], list[tuple[str, str]]],
    questions: list[dict],
    qrels: dict[str, dict[str, float]] | None = None,
    query_seconds: Callable[[str], tuple[float, float]] | None = None,
) -> dict:
    """Metrics (app/evaluation/metrics.py) of ``search`` (question -> top-10 (doc, text)) over ``questions``.

    Ranks count passages: doc hit@k = a passage of a relevant document among the first k;
    passage hit@5 = one of the first 5 passages is from the gold document and holds a gold answer
    (answerable questions only); MRR@10; nDCG@10 over the deduplicated documents, where the set has
    qrels. ``query_seconds(q)`` adds the (cached) query embedding's wall and CPU time to each run.
    """
    sums = {"hit@1": 0.0, "hit@5": 0.0, "hit@10": 0.0, "mrr": 0.0, "ndcg@10": 0.0}
    passage_hits = answerable = 0
    latencies, cpu_times = [], []
    for q in questions:
        started, cpu = time.perf_counter(), time.process_time()
        ranked = search(q["question"])[:10]
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        if query_seconds:
            extra_wall, extra_cpu = query_seconds(q["question"])
            elapsed, cpu_used = elapsed + extra_wall, cpu_used + extra_cpu
        latencies.append(elapsed)
        cpu_times.append(cpu_used)
        docs = [doc for doc, _ in ranked]
        relevance = (qrels or {}).get(q["id"]) or {q["doc"]: 1.0}
        relevant = [d for d, r in relevance.items() if r > 0] or [q["doc"]]
        for k in (1, 5, 10):
            sums[f"hit@{k}"] += metrics.hit_at_k(docs, relevant, k)
        sums["mrr"] += metrics.reciprocal_rank(docs, relevant, 10)
        sums["ndcg@10"] += metrics.ndcg_at_k(docs, relevance, 10)
        if q.get("answerable", True) and q["answers"]:
            answerable += 1
            passage_hits += metrics.passage_hit(ranked[:5], q["doc"], q["answers"])
    n = len(questions)
    return {
        **{k: round(v / n, 4) for k, v in sums.items() if k != "ndcg@10"},
        "ndcg@10": round(sums["ndcg@10"] / n, 4) if qrels is not None else None,
        "passage_hit@5": round(passage_hits / answerable, 4) if answerable else None,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        # CPU time of the process (all threads): comparable when the machine is shared and busy.
        "p50_cpu_ms": round(statistics.median(cpu_times) * 1000, 2),
        "questions": n,
    }


def evaluate(
    retriever: Retriever, questions: list[dict], options: RetrievalOptions, qrels: dict | None = None
) -> dict:
    """``score`` of ragqa's Retriever with ``options``. With CachedQueries, latency includes the query embedding."""
    cached = isinstance(retriever.embedder, CachedQueries)

    def search(question: str) -> list[tuple[str, str]]:
        return [(p.doc, p.text) for p in retriever.run(question, "bench", 10, options)]

    def query_seconds(question: str) -> tuple[float, float]:
        return retriever.embedder.seconds[question], retriever.embedder.cpu_seconds[question]

    if cached:
        for q in questions:  # embedded outside the timed runs; their time is added back
            retriever.embedder.embed_query(q["question"])
    return score(search, questions, qrels, query_seconds if cached else None)


def markdown_table(report: dict) -> str:
    """The results as one Markdown table (docs/retrieval.md is made of these)."""
    lines = [
        "| pipeline | doc hit@5 | passage hit@5 | MRR@10 | nDCG@10 | hit@1 | p50 ms | p50 CPU ms |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def f(v):
        return "-" if v is None else f"{v:.3f}"

    for name, r in report["results"].items():
        lines.append(
            f"| {name} | {f(r['hit@5'])} | {f(r['passage_hit@5'])} | {f(r['mrr'])} | {f(r.get('ndcg@10'))} "
            f"| {f(r['hit@1'])} | {r['p50_ms']:.0f} | {r['p50_cpu_ms']:.0f} |"
        )
    return "\n".join(lines)


def model_for_folder(folder: Path) -> str:
    """The model ``ragqa ingest`` picks for this folder with RAGQA_EMBEDDING_MODEL unset."""
    from app.core.embeddings import model_for_text
    from app.core.lexical import letter_counts
    from ingest.discovery import discover
    from ingest.loaders import load_bytes

    hangul = letters = 0
    for rel, path in discover(folder)[0]:
        h, n = letter_counts(load_bytes(rel, path.read_bytes()).text)
        hangul, letters = hangul + h, letters + n
    return model_for_text(hangul, letters)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--pipeline", action="append", choices=PIPELINES, help="repeatable; default: all")
    parser.add_argument("--setting", action="append", default=[], help="extra ragqa variants (repeatable)")
    settings = Settings()
    parser.add_argument(
        "--embedding-model",
        default=settings.embedding_model if settings.embedding_model_explicit else None,
        help="ragqa's (RAGQA_EMBEDDING_MODEL); unset: chosen from the folder's text, as ragqa ingest does",
    )
    parser.add_argument(
        "--embedding-backend",
        choices=get_args(EmbeddingBackend),
        default=settings.embedding_backend,
        help="how documents (and questions) are embedded (RAGQA_EMBEDDING_BACKEND)",
    )
    parser.add_argument(
        "--query-backend",
        choices=get_args(EmbeddingBackend),
        help="the questions' backend when it is not the documents' (a collection ingested before a change)",
    )
    parser.add_argument("--tokenizer", choices=sorted(TOKENIZERS), default="kiwi")
    parser.add_argument("--chunk-size", type=int, default=settings.chunk_size)
    parser.add_argument("--chunk-overlap", type=int, default=settings.chunk_overlap)
    parser.add_argument("--candidates", type=int, default=settings.retrieval_candidates)
    parser.add_argument(
        "--splitter",
        choices=sorted(SPLITTERS),
        default="ragqa",
        help="ragqa's sentence-end separators, or LangChain's defaults as the textbook peer uses",
    )
    parser.add_argument(
        "--chunk-header",
        choices=["none", *HEADER_RULES],
        default=settings.chunk_header,
        help="what ingest puts in front of each chunk's indexed text (RAGQA_CHUNK_HEADER)",
    )
    parser.add_argument("--limit", type=int, default=0, help="first N questions only")
    parser.add_argument(
        "--index-dir", type=Path, help="keep the ingested index here (reused when it matches)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--markdown", action="store_true", help="end with a Markdown table")
    args = parser.parse_args()

    pipelines = args.pipeline or ([] if args.setting else PIPELINES)
    questions = read_questions(args.dataset / "questions.jsonl")
    if args.limit:
        questions = questions[: args.limit]
    qrels = read_qrels(args.dataset)
    report = {
        "dataset": str(args.dataset),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/retrieval.py " + " ".join(sys.argv[1:]),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "questions": len(questions),
        "qrels": qrels is not None,
        "ragqa": None,
        "peers": {},
        "results": {},
    }

    ragqa_runs = (["ragqa"] if "ragqa" in pipelines else []) + [f"ragqa:{s}" for s in args.setting]
    if ragqa_runs:
        from bench.peers import CachedEmbeddingModel

        model = args.embedding_model or model_for_folder(args.dataset / "docs")
        query_backend = args.query_backend or args.embedding_backend
        embedder = CachedEmbeddingModel(
            load_embedding_model(model, backend=args.embedding_backend),
            load_embedding_model(model, backend=query_backend),
        )
        for q in questions:  # query vectors into the cache up front, as for the peers
            embedder.embed_query(q["question"])
        index_dir = args.index_dir or Path(tempfile.mkdtemp(prefix="ragqa-bench-"))
        store = IndexStore(index_dir)
        started = time.perf_counter()
        header = None if args.chunk_header == "none" else args.chunk_header
        splitter = SPLITTERS[args.splitter](args.chunk_size, args.chunk_overlap, header)
        summary = IngestJob(store, embedder, splitter, prepare=prepare_with(splitter)).run(
            args.dataset / "docs", "bench"
        )
        ingest_s = time.perf_counter() - started
        index = store.load("bench")
        if TOKENIZERS[args.tokenizer] != DEFAULT_TOKENIZER:
            index.lexical = LexicalIndex.build(
                ((c.id, indexed_text(c, header)) for c in index.chunks.values()), TOKENIZERS[args.tokenizer]
            )
        retriever = Retriever(OneCollection(index), CachedQueries(embedder))
        retriever.run("warm up", "bench", 10, RetrievalOptions(mode=RetrievalMode.hybrid))
        report["ragqa"] = {
            "embedding_model": embedder.model_id,
            "embedding_backend": args.embedding_backend,
            "query_backend": query_backend,
            "tokenizer": TOKENIZERS[args.tokenizer],
            "chunk_header": args.chunk_header,
            "chunk_size": args.chunk_size,
            "chunk_overlap": args.chunk_overlap,
            "splitter": args.splitter,
            "candidates": args.candidates,
            "chunks": summary.chunks,
            "sentence_vectors": len(index.sentences) if index.sentences is not None else 0,
            "ingest_seconds": round(ingest_s, 1),
        }
        defaults = RetrievalOptions(
            mode=RetrievalMode(settings.retrieval_mode),
            dense_weight=settings.hybrid_dense_weight,
            diversity=settings.retrieval_diversity,
            candidates=args.candidates,
        )
        for name in ragqa_runs:
            options = defaults if name == "ragqa" else parse_setting(name.split(":", 1)[1], args.candidates)
            report["results"][name] = evaluate(retriever, questions, options, qrels)
            print(f"done {name}", file=sys.stderr)

    peer_runs = [p for p in pipelines if p != "ragqa"]
    if peer_runs:
        from bench.peers import HaystackDefaults, LangChainTextbook, minilm_cache

        encoder = minilm_cache()
        encoder([q["question"] for q in questions])  # query vectors into the cache up front
        built = {}
        for name in peer_runs:
            peer, mode = name.rsplit("-", 1)
            if peer not in built:
                started = time.perf_counter()
                built[peer] = (LangChainTextbook if peer == "langchain" else HaystackDefaults)(
                    args.dataset / "docs", encoder
                )
                chunks = built[peer].chunks
                report["peers"][peer] = {
                    "chunks": chunks if isinstance(chunks, int) else len(chunks),
                    "build_seconds": round(time.perf_counter() - started, 1),
                }
            report["results"][name] = score(lambda q, p=built[peer], m=mode: p.search(q, m), questions, qrels)
            print(f"done {name}", file=sys.stderr)

    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print("\n" + markdown_table(report))


if __name__ == "__main__":
    main()
