"""The ingest job with the real embedding model: formats, skips, incremental sync, dedup, locking."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import numpy as np
import pytest

from app.core.store import DocumentNotFound, IndexStore
from ingest.run import IngestError, IngestJob
from ingest.splitting import TextSplitter
from tests.conftest import RAGQA
from tests.ingest.docgen import make_docx, make_pdf

pytestmark = pytest.mark.slow

LONG = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(120))


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id, self.dim, self.batch_size = inner.model_id, inner.dim, inner.batch_size
        self.texts: list[str] = []

    def embed_documents(self, texts):
        self.texts += texts
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture
def folder(tmp_path):
    """One file of each format, Korean in CP949, and every kind of file that must be skipped."""
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "alpha.txt").write_text("The alpha project ships rockets. " * 5)
    (docs / "sub" / "beta.md").write_text("# Beta\n\n" + LONG)
    (docs / "gamma.txt").write_bytes("감마 문서는 한국어로 쓰였다.".encode("cp949"))
    (docs / "page.html").write_text(
        "<html><head><script>var x='SCRIPT';</script></head><body><nav>NAVIGATION</nav>"
        "<main><p>The lighthouse keeper lives on the island of Pharos.</p></main></body></html>"
    )
    (docs / "report.pdf").write_bytes(
        make_pdf(
            [
                "The first page describes the orchard and its apple trees. " * 4,
                "The second page is about the pear harvest in October. " * 4,
            ]
        )
    )
    (docs / "memo.docx").write_bytes(make_docx(["Memo", "The submarine fleet returns in spring."]))
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR")
    (docs / "locked.pdf").write_bytes(make_pdf(["secret plans"], password="s3cret"))
    (docs / "image.png").write_bytes(b"\x89PNG\r\n")
    (docs / ".DS_Store").write_bytes(b"\x00\x01")
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("This file lies outside the ingested folder.")
    (docs / "escape.txt").symlink_to(outside)
    (docs / "inside-link.txt").symlink_to(docs / "alpha.txt")
    return docs


EXPECTED_SKIPS = {
    "empty.txt": "empty",
    "binary.txt": "binary content (NUL bytes)",
    "locked.pdf": "encrypted PDF (password required)",
    "image.png": "unsupported file type '.png'",
    ".DS_Store": "hidden file",
    "escape.txt": "symlink pointing outside the ingested folder",
}


@pytest.fixture
def job(tmp_path, embedder):
    return IngestJob(IndexStore(tmp_path / "indexes"), CountingEmbedder(embedder), TextSplitter(300, 50))


def test_fixture_folder_ingests_each_format_and_skips_with_reasons(job, folder):
    summary = job.run(folder, "docs")
    assert {s["path"]: s["reason"] for s in summary.skipped} == EXPECTED_SKIPS
    collection = job.store.load("docs")
    assert set(collection.manifest.documents) == {
        "alpha.txt",
        "sub/beta.md",
        "gamma.txt",
        "page.html",
        "report.pdf",
        "memo.docx",
        "inside-link.txt",
    }
    assert summary.added == 7 and collection.index.ntotal == summary.chunks
    texts = " ".join(c.text for c in collection.chunks.values())
    assert "감마 문서는" in texts and "Pharos" in texts and "submarine fleet" in texts
    assert "SCRIPT" not in texts and "NAVIGATION" not in texts and "outside the ingested" not in texts

    pdf_pages = {c.page for c in collection.chunks.values() if c.doc == "report.pdf"}
    assert pdf_pages == {1, 2}
    assert all(c.page is None for c in collection.chunks.values() if c.doc != "report.pdf")
    pear = collection.search(job.embedder.embed_query("When is the pear harvest?"), 1)[0].chunk
    assert pear.doc == "report.pdf" and pear.page == 2

    vectors = collection.vectors_for(list(collection.chunks))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # normalised


def test_rerun_embeds_nothing_and_edits_embed_only_that_file(job, folder):
    first = job.run(folder, "docs")
    assert len(job.embedder.texts) == first.embedded + first.sentences_embedded > first.embedded > 0

    job.embedder.texts.clear()
    again = job.run(folder, "docs")
    assert job.embedder.texts == []  # not one embedding call
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 7)
    assert again.version == first.version  # nothing rewritten

    (folder / "gamma.txt").write_text("Gamma now covers volcanoes of Iceland.")
    (folder / "alpha.txt").unlink()
    (folder / "delta.txt").write_text("Delta is new.")
    changed = job.run(folder, "docs")
    assert (changed.added, changed.updated, changed.deleted) == (1, 1, 2)  # the link to alpha went too
    assert sorted(job.embedder.texts) == ["Delta is new.", "Gamma now covers volcanoes of Iceland."]

    collection = job.store.load("docs")
    assert "alpha.txt" not in {c.doc for c in collection.chunks.values()}
    assert not any("감마" in c.text or "rockets" in c.text for c in collection.chunks.values())
    hit = collection.search(job.embedder.embed_query("volcanoes in Iceland"), 1)[0]
    assert hit.chunk.doc == "gamma.txt"


def test_identical_chunks_are_embedded_once_and_near_duplicates_reported(job, tmp_path):
    docs = tmp_path / "dups"
    docs.mkdir()
    shared = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen."
    (docs / "a.txt").write_text(shared)
    (docs / "b.txt").write_text(shared)
    (docs / "c.txt").write_text(shared.replace("sugar", "sugars"))  # near, not identical
    (docs / "d.txt").write_text("The Treaty of Westphalia ended the Thirty Years' War in 1648.")
    summary = job.run(docs, "dups", outliers=True)
    assert job.embedder.texts.count(shared) == 1 and summary.reused == 1
    collection = job.store.load("dups")
    assert {c.doc for c in collection.chunks.values() if c.text == shared} == {"a.txt", "b.txt"}
    pairs = {frozenset((p["a"]["doc"], p["b"]["doc"])) for p in summary.near_duplicates}
    assert pairs == {frozenset(("a.txt", "b.txt")), frozenset(("a.txt", "c.txt")), frozenset(("b.txt", "c.txt"))}
    assert all(p["score"] >= 0.98 for p in summary.near_duplicates)
    assert [o["doc"] for o in summary.outliers] == ["d.txt"]

    # A document re-split or moved keeps its vectors: renaming b.txt embeds nothing.
    job.embedder.texts.clear()
    (docs / "b.txt").rename(docs / "b-renamed.txt")
    moved = job.run(docs, "dups")
    assert (moved.added, moved.deleted, job.embedder.texts) == (1, 1, [])


def test_no_prune_keeps_documents_gone_from_the_folder(job, folder):
    job.run(folder, "docs")
    (folder / "alpha.txt").unlink()
    summary = job.run(folder, "docs", prune=False)
    assert summary.deleted == 0
    assert "alpha.txt" in job.store.load("docs").manifest.documents


def test_remove_documents(job, folder):
    job.run(folder, "docs")
    summary = job.remove_documents("docs", ["report.pdf"])
    collection = job.store.load("docs")
    assert summary.deleted == 1 and "report.pdf" not in collection.manifest.documents
    assert all(c.doc != "report.pdf" for c in collection.chunks.values())
    with pytest.raises(DocumentNotFound, match="no document 'report.pdf'"):
        job.remove_documents("docs", ["report.pdf"])


def test_two_concurrent_writers_both_land(job, tmp_path):
    """Without the writer lock, the second swap would drop the first writer's documents."""
    folders = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(6):
            (folder / f"{name}-{i}.txt").write_text(f"Document {name} number {i}. " + LONG[: 200 + 50 * i])
        folders.append(folder)
    errors = []

    def write(folder):
        try:
            job.run(folder, "shared", prune=False)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    collection = job.store.load("shared")
    assert len(collection.manifest.documents) == 12
    assert collection.index.ntotal == len(collection.chunks) == collection.manifest.chunk_count


def test_other_embedding_model_is_refused(job, folder, embedder):
    job.run(folder, "docs")
    other = type(embedder)("some/other-model", embedder.embeddings, embedder.dim)
    with pytest.raises(IngestError, match="was embedded with"):
        IngestJob(job.store, other, job.splitter).run(folder, "docs")


def test_cli_prints_json_summary_last_and_manages_collections(tmp_path, folder):
    ix = str(tmp_path / "ix")
    result = subprocess.run(
        [str(RAGQA), "ingest", str(folder), "--collection", "cli", "--index-dir", ix, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["added"] == 7 and summary["collection"] == "cli"
    assert {"path": "locked.pdf", "reason": "encrypted PDF (password required)"} in summary["skipped"]
    assert set(summary) >= {"added", "updated", "unchanged", "deleted", "skipped", "chunks", "seconds"}
    assert "files" in result.stderr and "chunks" in result.stderr  # both progress bars

    listed = subprocess.run(
        [str(RAGQA), "collections", "list", "--index-dir", ix, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    (row,) = json.loads(listed.stdout)["collections"]
    assert (row["name"], row["documents"], row["chunks"]) == ("cli", 7, summary["chunks"])
    deleted = subprocess.run(
        [str(RAGQA), "collections", "delete", "cli", "--index-dir", ix, "--yes"],
        capture_output=True,
        text=True,
    )
    assert deleted.returncode == 0 and not IndexStore(tmp_path / "ix").list_collections()
    again = subprocess.run(
        [str(RAGQA), "collections", "delete", "cli", "--index-dir", ix, "--yes"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "unknown collection 'cli'" in again.stderr


def test_missing_folder_is_a_clear_cli_error(tmp_path):
    result = subprocess.run(
        [str(RAGQA), "ingest", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "ix")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "is not a folder" in result.stderr


def test_fifo_is_skipped_not_read(job, tmp_path):
    docs = tmp_path / "fifo"
    docs.mkdir()
    (docs / "ok.txt").write_text("A regular file.")
    os.mkfifo(docs / "pipe.txt")  # reading it would block forever
    summary = job.run(docs, "fifo")
    assert summary.added == 1 and {"path": "pipe.txt", "reason": "not a regular file"} in summary.skipped
