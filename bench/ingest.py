"""Ingest throughput: ragqa's ingest job against raw SentenceTransformer.encode, in one run.

    python bench/ingest.py [--docs DIR] [--max-docs N] [--rounds R]

Both sides embed exactly the same chunks with the same model and batch size:
- ``ingest``: ``IngestJob.run`` (what ``ragqa ingest`` runs, minus process start and model
  load): load, split, embed, build the FAISS index, write it atomically to a fresh folder;
- ``raw``: ``SentenceTransformer.encode(chunks, batch_size, normalize_embeddings=True)`` on
  the chunk texts that ingest wrote.

Rounds alternate the two sides so a noisy shared machine hurts both alike; the best round of
each counts. Prints one JSON line, then a short table.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.core.config import Settings  # noqa: E402
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
    args = parser.parse_args()

    settings = Settings()
    embedder = load_embedding_model(settings.embedding_model, settings.embedding_batch_size)
    model = embedder.embeddings._client  # the SentenceTransformer behind the LangChain wrapper
    model.encode(["warm-up"] * 8, batch_size=8)

    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-ingest-"))
    try:
        docs = work / "docs"
        docs.mkdir()
        files = sorted(p for p in args.docs.iterdir() if p.is_file())
        for path in files[: args.max_docs or None]:
            shutil.copy(path, docs / path.name)

        ingest_s, raw_s, chunks = [], [], []
        for round_ in range(args.rounds):
            index_dir = work / f"indexes-{round_}"
            job = IngestJob(
                IndexStore(index_dir),
                embedder,
                TextSplitter(settings.chunk_size, settings.chunk_overlap, settings.chunk_header_rule),
            )
            started = time.perf_counter()
            summary = job.run(docs, "bench")
            ingest_s.append(time.perf_counter() - started)
            if summary.skipped:
                raise SystemExit(f"documents skipped: {summary.skipped}")

            chunks = [c.text for c in IndexStore(index_dir).load("bench").chunks.values()]
            started = time.perf_counter()
            model.encode(chunks, batch_size=settings.embedding_batch_size, normalize_embeddings=True)
            raw_s.append(time.perf_counter() - started)
            shutil.rmtree(index_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ingest_rate = len(chunks) / min(ingest_s)
    raw_rate = len(chunks) / min(raw_s)
    result = {
        "bench": "ingest",
        "documents": min(len(files), args.max_docs or len(files)),
        "chunks": len(chunks),
        "rounds": args.rounds,
        "ingest_seconds": [round(s, 2) for s in ingest_s],
        "raw_encode_seconds": [round(s, 2) for s in raw_s],
        "ingest_chunks_per_s": round(ingest_rate, 1),
        "raw_encode_chunks_per_s": round(raw_rate, 1),
        "ratio_ingest_over_raw": round(ingest_rate / raw_rate, 3),
        "embedding_model": embedder.model_id,
        "batch_size": settings.embedding_batch_size,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "machine": machine(),
    }
    print(json.dumps(result))
    print()
    print(f"{'':28} {'chunks/s':>9}  best of {args.rounds} ({len(chunks)} chunks)")
    print(f"{'ragqa ingest (IngestJob)':28} {ingest_rate:9.1f}")
    print(f"{'SentenceTransformer.encode':28} {raw_rate:9.1f}")
    print(f"{'ratio ingest / raw':28} {ingest_rate / raw_rate:9.3f}")


if __name__ == "__main__":
    main()
