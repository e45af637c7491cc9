"""What one loaded collection costs in memory and on disk, per chunk, at two or more sizes.

    PYTHONPATH=. python bench/index_memory.py [--sizes 5000 20000] [--docs DIR]

The chunks are those of --docs (default: SQuAD v1.1 dev), split as `ragqa ingest` splits them
(RAGQA_CHUNK_SIZE / RAGQA_CHUNK_OVERLAP), cycled to each size as bench/retrieve.py cycles them.
The vectors are the test suite's hashed bag of words at 384 dimensions (all-MiniLM-L6-v2's):
no model is loaded, and a float32 vector takes the same room whatever its values. IndexStore
writes each collection as an ingest does (FAISS, chunks.jsonl, BM25, manifest). A fresh Python
process then imports what the service imports, reads its resident memory, loads the collection
through CollectionCache (what every API worker holds) and reads it again. The per-chunk figure
is the slope between the smallest and the largest size, so the fixed cost of a process drops out.
Prints one JSON line, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.core.config import Settings  # noqa: E402
from app.core.store import IndexStore  # noqa: E402
from bench.ingest import DEFAULT_DOCS, machine  # noqa: E402
from bench.retrieve import COLLECTION, synthetic_collection  # noqa: E402
from ingest.run import IngestJob  # noqa: E402
from ingest.splitting import TextSplitter  # noqa: E402
from tests.fakes import FakeEmbedder  # noqa: E402

MINILM_DIM = 384

# Run in a fresh interpreter: resident memory before and after loading one collection.
_CHILD = """
import gc, json, sys
from pathlib import Path
import faiss, numpy, bm25s  # what the service has imported before any collection loads
from app.core.store import CollectionCache, IndexStore

def resident() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * __import__("os").sysconf("SC_PAGE_SIZE")

gc.collect()
before = resident()
cache = CollectionCache(IndexStore(Path(sys.argv[1])))
collection = cache.get(sys.argv[2])
gc.collect()
print(json.dumps({"before": before, "after": resident(), "chunks": len(collection.chunks)}))
"""


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(size: int, base, work: Path) -> dict:
    store = IndexStore(work / f"indexes-{size}")
    version = store.write(synthetic_collection(base, size, noise=0.02, seed=0))
    vdir = store.collection_dir(COLLECTION) / version
    disk = {p.name: (folder_bytes(p) if p.is_dir() else p.stat().st_size) for p in vdir.iterdir()}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(store.root), COLLECTION],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    rss = json.loads(child.stdout)
    assert rss["chunks"] == size, rss
    return {
        "chunks": size,
        "loaded_bytes": rss["after"] - rss["before"],
        "disk_bytes": sum(disk.values()),
        "disk_by_file": disk,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000])
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    args = parser.parse_args()
    if len(args.sizes) < 2:
        raise SystemExit("give at least two --sizes: the per-chunk cost is the slope between them")
    settings = Settings()
    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-index-memory-"))
    try:
        base_store = IndexStore(work / "base")
        splitter = TextSplitter(settings.chunk_size, settings.chunk_overlap)
        IngestJob(base_store, FakeEmbedder(dim=MINILM_DIM), splitter).run(args.docs, COLLECTION)
        base = base_store.load(COLLECTION)
        sizes = [measure(size, base, work) for size in sorted(args.sizes)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    small, large = sizes[0], sizes[-1]
    extra = large["chunks"] - small["chunks"]
    per_chunk = {
        "loaded_bytes": round((large["loaded_bytes"] - small["loaded_bytes"]) / extra),
        "disk_bytes": round((large["disk_bytes"] - small["disk_bytes"]) / extra),
    }
    text_chars = sum(len(c.text) for c in base.chunks.values()) / len(base.chunks)
    report = {
        "bench": "index_memory",
        "docs": str(args.docs),
        "base_chunks": len(base.chunks),
        "mean_chunk_chars": round(text_chars),
        "dim": MINILM_DIM,
        "sizes": sizes,
        "per_chunk": per_chunk,
        "per_million_chunks_gib": {k: round(v * 1e6 / 2**30, 2) for k, v in per_chunk.items()},
        "machine": machine(),
    }
    print(json.dumps(report))
    print()
    print("| chunks | loaded (RSS growth) | on disk |")
    print("|---|---|---|")
    for row in sizes:
        print(
            f"| {row['chunks']:,} | {row['loaded_bytes'] / 2**20:.1f} MiB | {row['disk_bytes'] / 2**20:.1f} MiB |"
        )
    print(f"| **per chunk** | **{per_chunk['loaded_bytes']:,} B** | **{per_chunk['disk_bytes']:,} B** |")


if __name__ == "__main__":
    main()
