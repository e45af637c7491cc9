"""Ingest throughput on Ray: a local ingest against Ray with 1 and 2 embedding workers, in one run.

    python bench/ingest_ray.py [--docs DIR] [--max-docs N] [--workers 1,2] [--rounds R]

Every side ingests the same copied folder into a fresh index with ``IngestJob.run`` (what
``ragqa ingest`` runs, minus process start): load, split, embed, build the FAISS index, write it.
- ``local``: in this process, with the model loaded beforehand;
- ``ray N``: ``--ray`` on a local Ray cluster started once (its start is timed apart, as
  ``ragqa ingest --ray`` without an address pays it on every run): tasks load and split, N
  embedding actors of one CPU each embed; each run starts its actors and loads the model in them,
  as every ``ragqa ingest --ray`` does, and that counts.
Each side must write the same chunks as the local one. Rounds run the sides in alternating order,
so a noisy shared machine hurts them alike; the best round of each counts. Prints one JSON line,
then a short table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.core.config import Settings
from app.core.embeddings import load_embedding_model
from app.core.store import IndexStore
from bench.ingest import DEFAULT_DOCS, machine
from ingest.ray_runner import LOCAL_OBJECT_STORE_BYTES, RayDocumentPreparer
from ingest.run import IngestJob, prepare_locally
from ingest.splitting import TextSplitter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="folder of documents")
    parser.add_argument("--max-docs", type=int, default=10, help="first N files (sorted); 0 = all")
    parser.add_argument("--workers", default="1,2", help="embedding actor counts to run on Ray")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]

    settings = Settings()
    embedder = load_embedding_model(settings.embedding_model, settings.embedding_batch_size)
    embedder.embed_documents(["warm-up"] * 8)
    splitter = TextSplitter(settings.chunk_size, settings.chunk_overlap, settings.chunk_header_rule)

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    ray.init(
        address="local",
        include_dashboard=False,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    ray_start_s = time.perf_counter() - started
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    cluster_cpus = int(ray.cluster_resources().get("CPU", 0))

    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-ingest-ray-"))
    seconds: dict[str, list[float]] = {}
    chunk_count = 0
    try:
        docs = work / "docs"
        docs.mkdir()
        files = sorted(p for p in args.docs.iterdir() if p.is_file())[: args.max_docs or None]
        for path in files:
            shutil.copy(path, docs / path.name)

        preparers = {"local": prepare_locally} | {
            f"ray {n}": RayDocumentPreparer(ray, "a local Ray cluster", n) for n in worker_counts
        }
        reference = None
        for round_ in range(args.rounds):
            order = list(preparers) if round_ % 2 == 0 else list(reversed(preparers))
            for name in order:
                index_dir = work / f"{name.replace(' ', '-')}-{round_}"
                job = IngestJob(IndexStore(index_dir), embedder, splitter, prepare=preparers[name])
                started = time.perf_counter()
                summary = job.run(docs, "bench")
                seconds.setdefault(name, []).append(time.perf_counter() - started)
                if summary.skipped:
                    raise SystemExit(f"documents skipped: {summary.skipped}")
                chunks = {c.id: c.text for c in IndexStore(index_dir).load("bench").chunks.values()}
                reference = reference or chunks
                if chunks != reference:
                    raise SystemExit(f"{name} wrote other chunks than the first side")
                chunk_count = len(chunks)
                shutil.rmtree(index_dir)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    sides = {
        name: {
            "seconds": [round(s, 2) for s in runs],
            "chunks_per_s": round(chunk_count / min(runs), 1),
        }
        for name, runs in seconds.items()
    }
    result = {
        "bench": "ingest_ray",
        "documents": len(files),
        "chunks": chunk_count,
        "rounds": args.rounds,
        "sides": sides,
        "ray_version": ray.__version__,
        "ray_cluster_cpus": cluster_cpus,
        "ray_cluster_start_seconds": round(ray_start_s, 2),
        "embedding_model": embedder.model_id,
        "batch_size": settings.embedding_batch_size,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "machine": machine(),
    }
    print(json.dumps(result))
    print()
    print(f"| {len(files)} documents, {chunk_count} chunks | seconds (each round) | chunks/s (best) |")
    print("|---|---|---|")
    for name, side in sides.items():
        label = "local ingest" if name == "local" else f"Ray, {name.split()[1]} embedding worker(s)"
        print(f"| {label} | {', '.join(f'{s:.1f}' for s in side['seconds'])} | {side['chunks_per_s']:.1f} |")
    print(f"\nRay cluster start (not in the rows above): {ray_start_s:.1f} s, {cluster_cpus} CPUs")


if __name__ == "__main__":
    main()
