"""Latency of POST /v1/retrieve over HTTP against the same retrieval in-process, per collection size.

    PYTHONPATH=. python bench/retrieve.py [--sizes 10000 100000 1000000] [--requests 300] [--docs DIR]
        [--index-type auto|flat|ivf]

The collections are repeated text with synthetic vectors. The documents in --docs (default:
SQuAD v1.1 dev) are ingested once as `ragqa ingest` would (split, embedded with the service's
model); their chunks are then cycled until there are N: copy k of document D is named
``copyK/D`` and holds D's chunk texts unchanged, and each copy's vector is the original's plus
gaussian noise (--noise per dimension), re-normalised, so FAISS ranks N distinct vectors.
IndexStore writes the collection as an ingest does: FAISS, chunks.jsonl, manifest, BM25 and the
sentence vectors (each copy's are its original's plus fresh noise of the same size; RAGQA_SENTENCE_VECTORS=false:
none). In-process retrieval is also timed with dense candidates ranked by the chunk's cosine alone
(``in_process_chunk_only``, retrieval as before sentence vectors), alternating with the others.

The FAISS index type is the one RAGQA_INDEX_TYPE (or --index-type) gives the size, built from
the exact vectors as IndexStore.write builds it (timed: index build time). Its recall@10 is
measured against exact (flat) search over the same vectors, with the questions' embeddings as
queries, at the chosen nprobe and a few others. Memory: the resident set of the `ragqa serve`
process before and after the collection is loaded, per million chunks.

Per size, `ragqa serve` runs over it (RAGQA_LLM_BASE_URL at a closed loopback port:
/v1/retrieve never calls the LLM) and each question goes once in-process (``Retriever.run`` as
the service calls it, query embedding included) and once over HTTP (one httpx client, one
request at a time: latency, not throughput), alternating which side goes first. Both use the
same retrieval mode (--mode, default the service's) and top_k, and must return the same passage
ids. Warm-up requests, the first of which loads the collection, are not counted.
On a machine busy with other work, torch's and FAISS's default of one OpenMP thread per core
can make a single query take ~0.5 s instead of ~15 ms (a parallel region waits for its slowest
thread); --threads 1 then measures retrieval rather than that wait.
Prints one JSON line, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import faiss
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.core import vector_index  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.embeddings import load_embedding_model  # noqa: E402
from app.core.sentence_vectors import SentenceVectors  # noqa: E402
from app.core.store import (  # noqa: E402
    Chunk,
    CollectionCache,
    CollectionIndex,
    DocumentEntry,
    IndexStore,
    new_faiss_index,
)
from app.llm.embedded import free_loopback_port  # noqa: E402
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever  # noqa: E402
from bench._serve import start_ragqa_serve, stop, wait_until_up  # noqa: E402
from bench.ingest import DEFAULT_DOCS, machine  # noqa: E402
from bench.retrieval import read_questions  # noqa: E402
from ingest.run import IngestJob  # noqa: E402
from ingest.splitting import TextSplitter  # noqa: E402

COLLECTION = "bench"


def base_collection(docs: Path, max_docs: int, settings: Settings, embedder, work: Path) -> CollectionIndex:
    """The first ``max_docs`` documents of ``docs`` (0 = all), ingested for real."""
    folder = work / "base-docs"
    folder.mkdir()
    for path in sorted(p for p in docs.iterdir() if p.is_file())[: max_docs or None]:
        shutil.copy(path, folder / path.name)
    store = IndexStore(work / "base-index")
    job = IngestJob(
        store,
        embedder,
        TextSplitter(settings.chunk_size, settings.chunk_overlap, settings.chunk_header_rule),
        sentence_vectors=settings.sentence_vectors,
    )
    summary = job.run(folder, COLLECTION)
    if summary.skipped or not summary.chunks:
        raise SystemExit(f"ingesting {docs}: {summary.chunks} chunks, skipped {summary.skipped}")
    return store.load(COLLECTION)


def synthetic_collection(base: CollectionIndex, size: int, noise: float, seed: int) -> CollectionIndex:
    """``size`` chunks cycling through ``base``'s, each copy with its own doc name and noisy vector."""
    originals = sorted(base.chunks.values(), key=lambda c: c.id)
    vectors = base.vectors_for([c.id for c in originals])
    n_base, dim = vectors.shape
    rows = np.arange(size) % n_base
    rng = np.random.default_rng(seed)
    noisy = vectors[rows] + noise * rng.standard_normal((size, dim), dtype=np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)

    chunks: dict[int, Chunk] = {}
    documents: dict[str, DocumentEntry] = {}
    for cid in range(size):
        original = originals[rows[cid]]
        doc = f"copy{cid // n_base:04d}/{original.doc}"
        chunks[cid] = Chunk(cid, doc, original.start, original.text, original.page)
        if doc not in documents:
            entry = base.manifest.documents[original.doc]
            documents[doc] = DocumentEntry(sha256=entry.sha256, chunk_ids=[], chars=entry.chars)
        documents[doc].chunk_ids.append(cid)
    manifest = base.manifest.model_copy(
        update={"collection": COLLECTION, "documents": documents, "next_chunk_id": size}
    )
    index = new_faiss_index(dim)
    index.add_with_ids(noisy, np.arange(size, dtype=np.int64))
    return CollectionIndex(manifest, index, chunks, sentences=synthetic_sentences(base, rows, noise, rng))


def synthetic_sentences(base: CollectionIndex, rows: np.ndarray, noise: float, rng) -> SentenceVectors | None:
    """Each copy's sentence vectors: its original's plus fresh N(0, noise) per dimension, re-normalised."""
    if base.sentences is None:
        return None
    originals = sorted(base.chunks)
    of_base = [base.sentences.of_chunk(originals[r]) for r in range(len(originals))]
    counts = np.array([len(of_base[r].spans) for r in rows])
    spans = np.concatenate([of_base[r].spans for r in rows])
    vectors = np.empty((int(counts.sum()), base.sentences.vectors.shape[1]), dtype=np.float16)
    done = 0
    for start in range(0, len(rows), 20_000):  # in blocks: float32 noise for 1M chunks would not fit
        block = np.concatenate([of_base[r].vectors for r in rows[start : start + 20_000]]).astype(np.float32)
        block += noise * rng.standard_normal(block.shape, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[done : done + len(block)] = block
        done += len(block)
    return SentenceVectors(np.repeat(np.arange(len(rows), dtype=np.int64), counts), spans, vectors)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def recall_at_10(truth: np.ndarray, approx: faiss.Index, queries: np.ndarray) -> float:
    """Share of the exact top 10 (``truth``: ids per query) that ``approx`` finds."""
    _, found = approx.search(queries, 10)
    return float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found)]))


def choose_index(collection: CollectionIndex, policy, queries: np.ndarray) -> tuple[CollectionIndex, dict]:
    """``collection`` (flat) with the index ``policy`` gives its size, built as IndexStore.write
    builds it; the build time and recall@10 against the flat index."""
    info, rebuild = policy.plan(collection.index, collection.manifest.vector_index)
    report: dict = {"type": info.type, **info.model_dump(exclude_none=True, exclude={"type"})}
    if not rebuild:
        report.update(build_s=0.0, recall_at_10=1.0)  # flat: the exact search itself
        return collection, report
    started = time.perf_counter()
    approx = vector_index.rebuild(collection.index, info)
    report["build_s"] = round(time.perf_counter() - started, 2)
    _, truth = collection.index.search(queries, 10)
    report["recall_at_10"] = round(recall_at_10(truth, approx, queries), 4)
    sweep = {}
    for nprobe in sorted({8, 16, 32, 64, info.nprobe or 1}):
        approx.nprobe = min(nprobe, approx.nlist)
        started = time.perf_counter()
        recall = recall_at_10(truth, approx, queries)
        sweep[approx.nprobe] = {
            "recall_at_10": round(recall, 4),
            "faiss_ms_per_query": round(1000 * (time.perf_counter() - started) / len(queries), 3),
        }
    approx.nprobe = info.nprobe
    report["nprobe_sweep"] = sweep
    manifest = collection.manifest.model_copy(update={"vector_index": info})
    return CollectionIndex(manifest, approx, collection.chunks, sentences=collection.sentences), report


def percentiles(seconds: list[float]) -> dict:
    ms = statistics.quantiles([s * 1000 for s in seconds], n=100, method="inclusive")
    return {
        "p50_ms": round(ms[49], 2),
        "p99_ms": round(ms[98], 2),
        "mean_ms": round(1000 * statistics.fmean(seconds), 2),
    }


def measure(
    size: int,
    base: CollectionIndex,
    questions: list[str],
    query_vectors: np.ndarray,
    args,
    settings: Settings,
    embedder,
) -> dict:
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix=f"ragqa-bench-retrieve-{size}-"))
    api = None
    try:
        started = time.perf_counter()
        collection = synthetic_collection(base, size, args.noise, args.seed)
        synth_s = time.perf_counter() - started
        policy = settings.vector_index_policy()
        collection, index_report = choose_index(collection, policy, query_vectors)
        store = IndexStore(work / "indexes", policy)
        started = time.perf_counter()
        store.write(collection)  # FAISS, chunks.jsonl, BM25 built over all `size` texts, manifest
        write_s = time.perf_counter() - started
        sentence_rows = len(collection.sentences) if collection.sentences is not None else 0
        del collection

        env = {
            **os.environ,
            "RAGQA_INDEX_DIR": str(store.root),
            "RAGQA_LLM_BASE_URL": f"http://127.0.0.1:{free_loopback_port()}/v1",  # nothing listens
            "RAGQA_API_KEYS": "",
            "RAGQA_RATE_LIMIT": "",
        }
        api, url = start_ragqa_serve(env, work / "serve.log")
        wait_until_up(f"{url}/healthz", api)
        rss_before = rss_bytes(api.pid)

        retriever = Retriever(CollectionCache(store), embedder, RetrievalOptions.from_settings(settings))
        options = retriever.options(RetrievalMode(args.mode))

        def in_process(question: str) -> tuple[float, list[int]]:
            started = time.perf_counter()
            passages = retriever.run(question, COLLECTION, args.top_k, options)
            return time.perf_counter() - started, [p.id for p in passages]

        chunk_only = replace(options, sentence_scoring=False)

        def in_process_chunk_only(question: str) -> tuple[float, list[int]]:
            """As before sentence vectors: dense candidates ranked by the chunk's cosine alone."""
            started = time.perf_counter()
            passages = retriever.run(question, COLLECTION, args.top_k, chunk_only)
            return time.perf_counter() - started, [p.id for p in passages]

        with httpx.Client(base_url=url, timeout=300) as client:

            def over_http(question: str) -> tuple[float, list[int]]:
                body = {
                    "question": question,
                    "collection": COLLECTION,
                    "top_k": args.top_k,
                    "retrieval": args.mode,
                }
                started = time.perf_counter()
                response = client.post("/v1/retrieve", json=body)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"/v1/retrieve: {response.status_code} {response.text[:500]}")
                return elapsed, [p["id"] for p in response.json()["passages"]]

            sides = {"in_process": in_process, "http": over_http, "in_process_chunk_only": in_process_chunk_only}
            times: dict[str, list[float]] = {name: [] for name in sides}
            first_ms: dict[str, float] = {}
            mismatches: list[dict] = []
            fewest = args.top_k
            for i in range(args.warmup + args.requests):
                question = questions[i % len(questions)]
                order = list(sides) if i % 2 == 0 else list(sides)[::-1]
                ids = {}
                for name in order:
                    elapsed, ids[name] = sides[name](question)
                    first_ms.setdefault(name, round(elapsed * 1000, 1))  # loads the collection
                    if i >= args.warmup:
                        times[name].append(elapsed)
                fewest = min(fewest, *map(len, ids.values()))
                if ids["in_process"] != ids["http"]:  # the chunk-only side ranks otherwise
                    mismatches.append({"question": question, **ids})
            rss_after = rss_bytes(api.pid)
            lexical = retriever.collections.get(COLLECTION).lexical
            bm25_times = []
            for question in questions:
                started = time.perf_counter()
                lexical.search(question, settings.retrieval_candidates)
                bm25_times.append(time.perf_counter() - started)
    finally:
        stop(api)
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "chunks": size,
        "index_build_s": {"synthesise": round(synth_s, 2), "store_write_with_bm25": round(write_s, 2)},
        "faiss_index": index_report,
        "serve_rss_mb": {"before_load": round(rss_before / 2**20), "after_load": round(rss_after / 2**20)},
        "serve_rss_gb_per_million_chunks": round((rss_after - rss_before) / 2**30 * 1e6 / size, 2),
        "bm25_search_in_process": percentiles(bm25_times),
        "first_request_ms": first_ms,
        "in_process": percentiles(times["in_process"]),
        "http": percentiles(times["http"]),
        "in_process_chunk_only": percentiles(times["in_process_chunk_only"]),
        "sentence_vectors": sentence_rows,
        "requests_each": args.requests,
        "fewest_passages": fewest,  # in any answer, either side
        "passage_id_mismatches": len(mismatches),
        "mismatch_examples": mismatches[:3],
        "load_avg_1m": {"start": round(load_start[0], 2), "end": round(os.getloadavg()[0], 2)},
    }
    for q in ("p50_ms", "p99_ms"):
        result[f"http_minus_in_process_{q}"] = round(result["http"][q] - result["in_process"][q], 2)
        result[f"http_over_in_process_{q.removesuffix('_ms')}"] = round(
            result["http"][q] / result["in_process"][q], 3
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000], help="chunks per collection"
    )
    parser.add_argument("--requests", type=int, default=300, help="timed requests per side and size")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per side first")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="documents whose chunks are repeated")
    parser.add_argument("--max-docs", type=int, default=0, help="first N files (sorted); 0 = all")
    parser.add_argument("--questions", type=Path, help="questions.jsonl; default: the one beside --docs")
    parser.add_argument("--max-questions", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--mode", choices=[m.value for m in RetrievalMode], help="default: the service's")
    parser.add_argument(
        "--noise", type=float, default=0.02, help="std. dev. per dimension added to each copy"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--index-type", choices=["auto", "flat", "ivf"], help="RAGQA_INDEX_TYPE for the written collections"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="OpenMP threads of torch and FAISS on both sides; default: theirs (one per core) in process, "
        "RAGQA_COMPUTE_THREADS (1) in the server",
    )
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server reads it at start-up
        faiss.omp_set_num_threads(args.threads)  # this process imported FAISS before reading it

    if args.index_type:
        os.environ["RAGQA_INDEX_TYPE"] = args.index_type
    settings = Settings()
    args.mode = args.mode or settings.retrieval_mode
    load_start = os.getloadavg()
    embedder = load_embedding_model(settings.embedding_model, settings.embedding_batch_size)
    import torch  # loaded by the embedding model already

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-retrieve-base-"))
    try:
        started = time.perf_counter()
        base = base_collection(args.docs, args.max_docs, settings, embedder, work)
        base_ingest_s = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)

    questions_file = args.questions or args.docs.parent / "questions.jsonl"
    if not questions_file.is_file():
        raise SystemExit(f"no questions: {questions_file} is missing (use --questions)")
    rows = read_questions(questions_file)
    ingested = {c.doc for c in base.chunks.values()}
    # Questions about the documents that were repeated, where the file says which document.
    questions = [r["question"] for r in rows if "doc" not in r or r["doc"] in ingested]
    questions = list(dict.fromkeys(questions))[: args.max_questions]
    if not questions:
        raise SystemExit(f"no question in {questions_file} is about the documents in {args.docs}")

    query_vectors = np.vstack([embedder.embed_query(q) for q in questions]).astype(np.float32)
    results = [measure(size, base, questions, query_vectors, args, settings, embedder) for size in args.sizes]
    report = {
        "bench": "retrieve",
        "text": (
            f"repeated: the {len(base.chunks)} real chunks of {len(base.manifest.documents)} documents in "
            f"{args.docs}, cycled to each size; vectors real-plus-noise: each copy's real embedding plus "
            f"N(0, {args.noise}) per dimension, re-normalised"
        ),
        "base_chunks": len(base.chunks),
        "base_ingest_s": round(base_ingest_s, 1),
        "questions": len(questions),
        "retrieval_mode": args.mode,
        "index_type_setting": settings.index_type,
        "top_k": args.top_k,
        "embedding_model": embedder.model_id,
        "threads": {"torch": torch.get_num_threads(), "faiss": faiss.omp_get_max_threads()},
        "sizes": results,
        "machine": machine(),
    }
    report["machine"]["load_avg_at_start"] = [round(x, 2) for x in load_start]
    report["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))
    print()
    print(
        f"mode {args.mode}, top_k {args.top_k}, {args.requests} requests per side, "
        f"threads {report['threads']}; repeated text, vectors real-plus-noise (synthetic)"
    )
    print()
    print(
        "| chunks | FAISS index | recall@10 vs exact | FAISS build s | in-process p50 / p99 ms "
        "| chunk-only in-process p50 / p99 ms | HTTP p50 / p99 ms "
        "| BM25 p50 ms | serve RSS GB per 1M chunks | id mismatches | write s (with BM25) | load 1m start→end |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        ip, co, h, fx = r["in_process"], r["in_process_chunk_only"], r["http"], r["faiss_index"]
        kind = fx["type"] + (f" nlist {fx['nlist']} nprobe {fx['nprobe']}" if fx["type"] == "ivf" else "")
        print(
            f"| {r['chunks']} | {kind} | {fx['recall_at_10']:.3f} | {fx['build_s']:.1f} "
            f"| {ip['p50_ms']:.1f} / {ip['p99_ms']:.1f} | {co['p50_ms']:.1f} / {co['p99_ms']:.1f} "
            f"| {h['p50_ms']:.1f} / {h['p99_ms']:.1f} "
            f"| {r['bm25_search_in_process']['p50_ms']:.1f} | {r['serve_rss_gb_per_million_chunks']:.2f} "
            f"| {r['passage_id_mismatches']} | {r['index_build_s']['store_write_with_bm25']:.1f} "
            f"| {r['load_avg_1m']['start']:.2f}→{r['load_avg_1m']['end']:.2f} |"
        )


if __name__ == "__main__":
    main()
