"""The DocumentPreparer seam of the ingest run (fast tier): vectors computed where documents are
prepared are the ones stored, and only new or changed documents are handed to the preparer."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from app.core.store import IndexStore
from ingest.run import IngestJob, prepare_locally, texts_to_embed
from ingest.splitting import TextSplitter
from tests.conftest import REPO
from tests.fakes import FakeEmbedder

SAMPLES = REPO / "samples" / "ragqa-docs"


class NoEmbedding(FakeEmbedder):
    """The job's own embedder, which a preparer that embeds must leave unused."""

    def embed_documents(self, texts):
        raise AssertionError(f"the version builder embedded {len(texts)} texts itself")


class EmbeddingPreparer:
    """Prepares as a local run does, then embeds the new chunk texts and their sentences, as the
    Ray workers do."""

    def __init__(self):
        self.embedder = FakeEmbedder()
        self.handed: list[list[str]] = []

    def __call__(self, work):
        self.handed.append([rel for rel, _ in work.documents])
        for rel, doc in prepare_locally(work):
            if not isinstance(doc, str):
                new = texts_to_embed(
                    rel, doc, work.splitter.header, work.known_texts, work.sentence_vectors
                )
                doc.vectors = dict(zip(new, self.embedder.embed_documents(list(new.values()))))
            yield rel, doc


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLES, docs)
    (docs / "binary.txt").write_bytes(b"\x00\x01 not text")
    return docs


def test_prepared_vectors_are_stored_and_only_changed_documents_are_handed_over(tmp_path, folder):
    splitter = TextSplitter(300, 50, "title+section")
    # Batches of 4 chunks: neighbouring chunks of one document land in different batches.
    local = IngestJob(IndexStore(tmp_path / "local"), FakeEmbedder(batch_size=4), splitter)
    preparer = EmbeddingPreparer()
    remote = IngestJob(IndexStore(tmp_path / "remote"), NoEmbedding(batch_size=4), splitter, prepare=preparer)

    for job in (local, remote):
        summary = job.run(folder, "c")
        assert summary.skipped == [{"path": "binary.txt", "reason": "binary content (NUL bytes)"}]
    assert preparer.handed == [sorted(p.name for p in folder.iterdir())]

    (folder / "faq.txt").write_text((folder / "faq.txt").read_text() + "\n\nA new answer at the end.\n")
    (folder / "new.md").write_text("# New\n\nA document added later.\n")
    (folder / "serving.md").unlink()
    summaries = [job.run(folder, "c") for job in (local, remote)]
    assert preparer.handed[1] == ["binary.txt", "faq.txt", "new.md"]  # binary.txt: skipped, so never stored
    assert summaries[1].updated == 1 and summaries[1].added == 1 and summaries[1].deleted == 1
    assert {k: v for k, v in summaries[0].to_dict().items() if k not in ("seconds", "version")} == {
        k: v for k, v in summaries[1].to_dict().items() if k not in ("seconds", "version")
    }

    a, b = IndexStore(tmp_path / "local").load("c"), IndexStore(tmp_path / "remote").load("c")
    assert a.chunks == b.chunks and a.manifest.documents == b.manifest.documents
    ids = sorted(a.chunks)
    np.testing.assert_array_equal(a.vectors_for(ids), b.vectors_for(ids))
    assert a.sentences is not None and b.sentences is not None and len(a.sentences) > len(ids)
    np.testing.assert_array_equal(a.sentences.chunk_ids, b.sentences.chunk_ids)
    np.testing.assert_array_equal(a.sentences.spans, b.sentences.spans)
    np.testing.assert_array_equal(a.sentences.vectors, b.sentences.vectors)
