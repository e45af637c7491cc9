"""Incremental ingest: first ingest of 1,000 documents vs re-ingesting them unchanged (goal: <= 3%).

The documents are the first 1,000 distinct paragraphs (over 200 characters) of the SQuAD
dev articles in ../shared/eval, one paragraph per .txt file. Measured two ways:

- job: ``IngestJob.run`` in this process, the embedding model already loaded;
- cli: wall-clock of ``ragqa ingest --json`` as a user runs it (process start, imports, and
  for the first ingest the model load, which a no-op re-ingest skips).

Also: 10 documents edited, then re-ingested. Prints one JSON object, then a table.

    python bench/ingest_incremental.py [--docs 1000] [--repeats 3] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EVAL_DIR = Path(os.environ.get("RAGQA_EVAL_DIR", REPO.parent / "shared" / "eval"))
RAGQA = Path(sys.executable).with_name("ragqa")


def paragraphs(limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for folder in ("squad-v1.1-dev", "squad-v2.0-dev"):
        for path in sorted((EVAL_DIR / folder / "docs").glob("*.txt")):
            for para in path.read_text(encoding="utf-8").split("\n\n")[1:]:
                para = para.strip()
                if len(para) > 200:
                    seen.setdefault(para)
    found = list(seen)
    if len(found) < limit:
        sys.exit(f"only {len(found)} paragraphs in {EVAL_DIR}; ask for fewer --docs")
    return found[:limit]


def write_folder(folder: Path, texts: list[str]) -> None:
    folder.mkdir(parents=True)
    for i, text in enumerate(texts):
        (folder / f"doc{i:04d}.txt").write_text(text, encoding="utf-8")


def cli_ingest(folder: Path, index_dir: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run(
        [str(RAGQA), "ingest", str(folder), "--collection", "bench", "--index-dir", str(index_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return time.perf_counter() - started, json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true", help="only the in-process measurement")
    args = parser.parse_args()

    from app.core.config import DEFAULT_EMBEDDING_MODEL
    from app.core.embeddings import load_embedding_model
    from app.core.store import IndexStore
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter

    texts = paragraphs(args.docs)
    report: dict = {"documents": len(texts), "chars": sum(map(len, texts)), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="ragqa-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "docs"
        write_folder(folder, texts)

        embedder = load_embedding_model(DEFAULT_EMBEDDING_MODEL)
        job = IngestJob(IndexStore(tmp / "ix-job"), embedder, TextSplitter(1000, 150))
        first = job.run(folder, "bench")
        again = [job.run(folder, "bench") for _ in range(args.repeats)]
        assert all(s.embedded == 0 and s.unchanged == len(texts) for s in again)
        re_s = statistics.median(s.seconds for s in again)
        for i in range(0, 100, 10):  # edit 10 documents
            path = folder / f"doc{i:04d}.txt"
            path.write_text(path.read_text(encoding="utf-8") + " Edited for the benchmark.", encoding="utf-8")
        edited = job.run(folder, "bench")
        report["job"] = {
            "first_s": first.seconds,
            "chunks": first.chunks,
            "embedded": first.embedded,
            "reingest_unchanged_s": re_s,
            "ratio": round(re_s / first.seconds, 5),
            "edit_10_docs_s": edited.seconds,
            "edit_10_docs_embedded": edited.embedded,
        }

        if not args.skip_cli:
            cli_folder = tmp / "docs-cli"
            write_folder(cli_folder, texts)
            first_s, first_summary = cli_ingest(cli_folder, tmp / "ix-cli")
            runs = [cli_ingest(cli_folder, tmp / "ix-cli") for _ in range(args.repeats)]
            assert all(s["embedded"] == 0 for _, s in runs)
            cli_re = statistics.median(s for s, _ in runs)
            report["cli"] = {
                "first_s": round(first_s, 3),
                "chunks": first_summary["chunks"],
                "reingest_unchanged_s": round(cli_re, 3),
                "ratio": round(cli_re / first_s, 5),
            }

    print(json.dumps(report))
    print(f"\n{report['documents']} documents, {report['job']['chunks']} chunks, {report['cpus']} CPUs")
    print(f"{'measure':<6} {'first ingest s':>15} {'re-ingest s':>12} {'ratio':>8}")
    for name in ("job", "cli"):
        if name in report:
            r = report[name]
            print(f"{name:<6} {r['first_s']:>15.2f} {r['reingest_unchanged_s']:>12.3f} {r['ratio']:>8.2%}")
    j = report["job"]
    print(f"edit 10 documents: {j['edit_10_docs_s']:.2f} s, {j['edit_10_docs_embedded']} chunks embedded")


if __name__ == "__main__":
    main()
