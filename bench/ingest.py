"""Ingest throughput: ragqa's ingest job against the raw encoders it can run on, in one run.

    python bench/ingest.py [--docs DIR] [--max-docs N] [--rounds R] [--backends torch onnx onnx-int8]

Every side embeds exactly the same chunks with the same model and batch size:
- ``ingest``: ``IngestJob.run`` (what ``ragqa ingest`` runs, minus process start and model
  load) on the configured RAGQA_EMBEDDING_BACKEND: load, split, embed the chunks and their
  sentences, build the FAISS index, write it atomically to a fresh folder;
- ``ingest, no sentence vectors``: the same with RAGQA_SENTENCE_VECTORS=false (chunks only), so
  the cost of the sentence vectors shows, in time and in index size on disk;
- ``raw torch``: ``SentenceTransformer.encode(chunks, batch_size, normalize_embeddings=True)``
  on the chunk texts that ingest wrote;
- ``raw onnx`` / ``raw onnx-int8``: the ONNX Runtime encoder of that backend
  (``OnnxSentenceEncoder.encode``) on the same texts.

Rounds alternate the order of the sides (ingest first, then the raw encoders; then the raw
encoders first) so a noisy shared machine hurts all alike; the best round of each counts.
Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.core.config import EmbeddingBackend, Settings  # noqa: E402
from app.core.embeddings import load_embedding_model  # noqa: E402
from app.core.store import IndexStore  # noqa: E402
from ingest.run import IngestJob  # noqa: E402
from ingest.splitting import TextSplitter  # noqa: E402

DEFAULT_DOCS = REPO.parent / "shared" / "eval" / "squad-v1.1-dev" / "docs"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="folder of documents")
    parser.add_argument("--max-docs", type=int, default=10, help="first N files (sorted); 0 = all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=get_args(EmbeddingBackend),
        default=list(get_args(EmbeddingBackend)),
        help="raw encoders to time beside ingest",
    )
    args = parser.parse_args()

    settings = Settings()
    model_name, batch = settings.embedding_model, settings.embedding_batch_size
    embedder = load_embedding_model(model_name, batch, settings.embedding_backend, settings.onnx_cache_dir)

    def raw_encoder(backend: str):
        model = load_embedding_model(model_name, batch, backend, settings.onnx_cache_dir)
        if backend == "torch":
            client = model.embeddings._client  # type: ignore[attr-defined]  # the SentenceTransformer
            return lambda texts: client.encode(texts, batch_size=batch, normalize_embeddings=True)
        encoder = model.embeddings.encoder  # type: ignore[attr-defined]  # the OnnxSentenceEncoder
        return lambda texts: encoder.encode(texts, batch)

    raws = {backend: raw_encoder(backend) for backend in args.backends}
    for encode in raws.values():
        encode(["warm-up"] * 8)
    embedder.embed_documents(["warm-up"] * 8)

    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-ingest-"))
    try:
        docs = work / "docs"
        docs.mkdir()
        files = sorted(p for p in args.docs.iterdir() if p.is_file())
        for path in files[: args.max_docs or None]:
            shutil.copy(path, docs / path.name)

        ingest_s: list[float] = []
        plain_s: list[float] = []  # without sentence vectors
        index_bytes: dict[str, int] = {}
        raw_s: dict[str, list[float]] = {backend: [] for backend in raws}
        chunks: list[str] = []
        load = [round(os.getloadavg()[0], 2)]
        splitter = TextSplitter(settings.chunk_size, settings.chunk_overlap, settings.chunk_header_rule)
        for round_ in range(args.rounds):
            index_dir = work / f"indexes-{round_}"

            def run_ingest(sentence_vectors: bool, seconds: list[float]) -> None:
                side = "with" if sentence_vectors else "without"
                folder = index_dir / side
                job = IngestJob(IndexStore(folder), embedder, splitter, sentence_vectors=sentence_vectors)
                started = time.perf_counter()
                summary = job.run(docs, "bench")
                seconds.append(time.perf_counter() - started)
                if summary.skipped:
                    raise SystemExit(f"documents skipped: {summary.skipped}")
                version = folder / "bench" / summary.version
                index_bytes[side] = sum(
                    f.stat().st_size for f in version.rglob("*") if f.is_file()
                )

            def run_raws() -> None:
                for backend, encode in raws.items():
                    started = time.perf_counter()
                    encode(chunks)
                    raw_s[backend].append(time.perf_counter() - started)

            # Odd rounds put the raw encoders first: a load that changes during a round then
            # favours no side every round.
            if round_ % 2 and chunks:
                run_raws()
                run_ingest(False, plain_s)
                run_ingest(True, ingest_s)
            else:
                run_ingest(True, ingest_s)
                chunks = [c.text for c in IndexStore(index_dir / "with").load("bench").chunks.values()]
                run_ingest(False, plain_s)
                run_raws()
            shutil.rmtree(index_dir)
        load.append(round(os.getloadavg()[0], 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ingest_rate = len(chunks) / min(ingest_s)
    plain_rate = len(chunks) / min(plain_s)
    raw_rates = {backend: len(chunks) / min(seconds) for backend, seconds in raw_s.items()}
    same_raw = raw_rates.get(settings.embedding_backend)
    result = {
        "bench": "ingest",
        "documents": min(len(files), args.max_docs or len(files)),
        "chunks": len(chunks),
        "rounds": args.rounds,
        "ingest_backend": settings.embedding_backend,
        "ingest_seconds": [round(s, 2) for s in ingest_s],
        "raw_encode_seconds": {b: [round(s, 2) for s in seconds] for b, seconds in raw_s.items()},
        "ingest_chunks_per_s": round(ingest_rate, 1),
        "ingest_no_sentence_vectors_seconds": [round(s, 2) for s in plain_s],
        "ingest_no_sentence_vectors_chunks_per_s": round(plain_rate, 1),
        "index_mb": {side: round(b / 2**20, 1) for side, b in index_bytes.items()},
        "raw_encode_chunks_per_s": {b: round(rate, 1) for b, rate in raw_rates.items()},
        "ratio_ingest_over_raw_same_backend": round(ingest_rate / same_raw, 3) if same_raw else None,
        "ratio_ingest_over_raw_torch": round(ingest_rate / raw_rates["torch"], 3)
        if "torch" in raw_rates
        else None,
        "embedding_model": embedder.model_id,
        "batch_size": batch,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "machine": {**machine(), "load_avg_1m_before_after": load},
    }
    print(json.dumps(result))
    print()
    print(f"{'':36} {'chunks/s':>9}  best of {args.rounds} ({len(chunks)} chunks)")
    print(f"{'ragqa ingest (IngestJob, ' + settings.embedding_backend + ')':36} {ingest_rate:9.1f}")
    print(f"{'  the same, no sentence vectors':36} {plain_rate:9.1f}")
    for backend, rate in raw_rates.items():
        print(f"{'raw encode, ' + backend:36} {rate:9.1f}")
    if same_raw:
        print(f"{'ratio ingest / raw ' + settings.embedding_backend:36} {ingest_rate / same_raw:9.3f}")
    if "torch" in raw_rates:
        print(f"{'ratio ingest / raw torch':36} {ingest_rate / raw_rates['torch']:9.3f}")
    print(f"index on disk, MB: {result['index_mb']}")


if __name__ == "__main__":
    main()
