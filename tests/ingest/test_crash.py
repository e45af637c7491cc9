"""kill -9 of an ingest at different points: the previous version still loads, the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from app.core.store import IndexStore
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.conftest import REPO

pytestmark = pytest.mark.slow

# Runs a real ingest in a child process that SIGKILLs itself at the chosen point.
CRASHING_INGEST = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from app.core import store as store_module
    from app.core.embeddings import EmbeddingModel, load_embedding_model
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter

    folder, index_dir, point = sys.argv[1:4]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)

    if point == "embedding":  # mid-run: some batches embedded, nothing written
        calls = []
        real_embed = EmbeddingModel.embed_documents
        def embed(self, texts):
            calls.append(1)
            if len(calls) == 2:
                die()
            return real_embed(self, texts)
        EmbeddingModel.embed_documents = embed
    elif point == "version-written":  # the new version complete in its temporary folder
        real_fsync = store_module._fsync_dir
        def fsync(path):
            if Path(path).name.startswith(".tmp-"):
                die()
            real_fsync(path)
        store_module._fsync_dir = fsync
    elif point == "before-swap":  # the version folder renamed into place, CURRENT not yet swapped
        real_replace = os.replace
        def replace(src, dst):
            if Path(dst).name == "CURRENT":
                die()
            real_replace(src, dst)
        store_module.os.replace = replace
    elif point == "after-swap":  # CURRENT swapped, old versions not yet pruned
        store_module.IndexStore._prune = die

    embedder = load_embedding_model("sentence-transformers/all-MiniLM-L6-v2", 2)
    IngestJob(store_module.IndexStore(Path(index_dir)), embedder, TextSplitter(200, 20)).run(Path(folder), "docs")
    print("not killed")
""")


def write_docs(folder, generation: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(6):
        text = f"Generation {generation}. Document {i} describes the harbour of town {i}. " * 6
        (folder / f"doc{i}.txt").write_text(text)


@pytest.mark.parametrize("point", ["embedding", "version-written", "before-swap", "after-swap"])
def test_kill_9_leaves_a_loadable_version_and_the_next_run_completes(tmp_path, embedder, point):
    folder, index_dir = tmp_path / "docs", tmp_path / "indexes"
    write_docs(folder, 1)
    store = IndexStore(index_dir)
    job = IngestJob(store, embedder, TextSplitter(200, 20))
    first = job.run(folder, "docs")

    write_docs(folder, 2)
    (folder / "doc5.txt").unlink()
    (folder / "extra.txt").write_text("An extra document about lighthouses.")
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_INGEST, str(folder), str(index_dir), point],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    live = store.load("docs")  # loads, and is consistent
    assert live.index.ntotal == len(live.chunks) == live.manifest.chunk_count
    if point == "after-swap":
        assert live.version != first.version and "extra.txt" in live.manifest.documents
    else:
        assert live.version == first.version
        assert all(c.text.startswith("Generation 1.") for c in live.chunks.values())

    after = job.run(folder, "docs")
    final = store.load("docs")
    assert set(final.manifest.documents) == {f"doc{i}.txt" for i in range(5)} | {"extra.txt"}
    assert not any(c.text.startswith("Generation 1.") for c in final.chunks.values())
    assert final.index.ntotal == len(final.chunks) == final.manifest.chunk_count
    if point != "after-swap":
        assert (after.updated, after.added, after.deleted) == (5, 1, 1)
    leftovers = [p.name for p in (index_dir / "docs").iterdir() if p.name.startswith(".tmp-")]
    versions = [p.name for p in (index_dir / "docs").iterdir() if p.name.startswith("v")]
    assert leftovers == [] and len(versions) <= 2
