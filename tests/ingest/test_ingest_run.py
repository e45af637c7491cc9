"""The ingest job with the real embedding model: summary, skips, incremental sync."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from app.core.store import IndexStore
from ingest.run import IngestError, IngestJob
from ingest.splitting import TextSplitter
from tests.conftest import RAGQA

pytestmark = pytest.mark.slow

LONG = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(120))


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "alpha.txt").write_text("The alpha project ships rockets. " * 5)
    (docs / "sub" / "beta.md").write_text("# Beta\n\n" + LONG)
    (docs / "gamma.txt").write_bytes("감마 문서는 한국어로 쓰였다.".encode("cp949"))
    (docs / "empty.txt").write_text("")
    (docs / "scan.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / ".DS_Store").write_bytes(b"\x00\x01")
    return docs


@pytest.fixture
def job(tmp_path, embedder):
    return IngestJob(IndexStore(tmp_path / "indexes"), embedder, TextSplitter(300, 50))


def test_first_ingest_writes_chunks_with_offsets(job, folder):
    summary = job.run(folder, "docs")
    assert (summary.added, summary.updated, summary.unchanged, summary.deleted) == (3, 0, 0, 0)
    assert {s["path"] for s in summary.skipped} == {"empty.txt", "scan.pdf", ".DS_Store"}
    assert all(s["reason"] for s in summary.skipped)

    collection = job.store.load("docs")
    assert collection.index.ntotal == summary.chunks == summary.embedded > 3
    assert set(collection.manifest.documents) == {"alpha.txt", "sub/beta.md", "gamma.txt"}
    texts = {
        "alpha.txt": (folder / "alpha.txt").read_text(),
        "sub/beta.md": (folder / "sub" / "beta.md").read_text(),
        "gamma.txt": (folder / "gamma.txt").read_bytes().decode("cp949"),
    }
    for chunk in collection.chunks.values():
        assert texts[chunk.doc][chunk.start : chunk.start + len(chunk.text)] == chunk.text
    assert max(len(c.text) for c in collection.chunks.values()) <= 300
    vectors = collection.vectors_for(list(collection.chunks))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # normalised


def test_rerun_embeds_only_what_changed(job, folder):
    first = job.run(folder, "docs")

    again = job.run(folder, "docs")
    assert (again.added, again.updated, again.deleted, again.embedded) == (0, 0, 0, 0)
    assert again.unchanged == 3 and again.version == first.version  # nothing rewritten

    (folder / "alpha.txt").write_text("The alpha project now builds submarines.")
    (folder / "gamma.txt").unlink()
    (folder / "delta.txt").write_text("Delta is new.")
    changed = job.run(folder, "docs")
    assert (changed.added, changed.updated, changed.unchanged, changed.deleted) == (1, 1, 1, 1)
    assert changed.embedded == 2  # one chunk each for the new and the edited document

    collection = job.store.load("docs")
    docs = {c.doc for c in collection.chunks.values()}
    assert docs == {"alpha.txt", "sub/beta.md", "delta.txt"}
    assert any("submarines" in c.text for c in collection.chunks.values())
    assert not any("rockets" in c.text for c in collection.chunks.values())
    hit = collection.search(job.embedder.embed_query("Which project builds submarines?"), 1)[0]
    assert hit.chunk.doc == "alpha.txt"


def test_no_prune_keeps_documents_gone_from_the_folder(job, folder):
    job.run(folder, "docs")
    (folder / "alpha.txt").unlink()
    summary = job.run(folder, "docs", prune=False)
    assert summary.deleted == 0
    assert "alpha.txt" in job.store.load("docs").manifest.documents


def test_other_embedding_model_is_refused(job, folder, embedder):
    job.run(folder, "docs")
    other = type(embedder)("some/other-model", embedder.embeddings, embedder.dim)
    with pytest.raises(IngestError, match="was embedded with"):
        IngestJob(job.store, other, job.splitter).run(folder, "docs")


def test_cli_prints_json_summary_last(tmp_path, folder):
    result = subprocess.run(
        [str(RAGQA), "ingest", str(folder), "--collection", "cli", "--index-dir", str(tmp_path / "ix"), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["added"] == 3 and summary["collection"] == "cli"
    assert {"path": "scan.pdf", "reason": "unsupported file type '.pdf'"} in summary["skipped"]
    assert set(summary) >= {"added", "updated", "unchanged", "deleted", "skipped", "chunks", "seconds"}


def test_missing_folder_is_a_clear_cli_error(tmp_path):
    result = subprocess.run(
        [str(RAGQA), "ingest", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "ix")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a folder" in result.stderr
