"""Sentence vectors stored at ingest (fast tier, hashed bag-of-words embedder): what is stored, what
an incremental run embeds again, and the two readers, retrieval and the evidence stage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.core.sentence_vectors import ChunkSentences, SentenceVectors
from app.core.sentences import split_sentences
from app.core.store import (
    Chunk,
    CollectionCache,
    CollectionIndex,
    DocumentEntry,
    EmbeddingInfo,
    IndexStore,
    Manifest,
    SplitterInfo,
    new_faiss_index,
)
from app.rag.evidence import Evidence
from app.rag.grounding import Grounder
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever, by_dense_score
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.fakes import FakeEmbedder

DIM = 64


class CountingEmbedder(FakeEmbedder):
    def __init__(self):
        super().__init__(dim=DIM)
        self.texts: list[str] = []

    def embed_documents(self, texts):
        self.texts += texts
        return super().embed_documents(texts)


def _rows(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)


def test_rows_round_trip_through_disk_and_per_chunk(tmp_path):
    by_chunk = {
        7: ChunkSentences(np.array([[0, 5], [6, 20]], np.int32), _rows(2, 1)),
        3: ChunkSentences(np.array([[0, 9]], np.int32), _rows(1, 2)),
    }
    stored = SentenceVectors.from_chunks(by_chunk, DIM)
    assert stored.chunk_ids.tolist() == [3, 7, 7]  # grouped by chunk id, ascending
    stored.save(tmp_path / "s")
    loaded = SentenceVectors.load(tmp_path / "s")
    assert loaded is not None and len(loaded) == 3
    for cid, rows in by_chunk.items():
        np.testing.assert_array_equal(loaded.of_chunk(cid).spans, rows.spans)
        np.testing.assert_array_equal(loaded.of_chunk(cid).vectors, rows.vectors)
    assert loaded.by_chunk().keys() == {3, 7}
    assert len(loaded.of_chunk(5).spans) == 0
    assert SentenceVectors.load(tmp_path / "absent") is None

    query = by_chunk[7].vectors[1].astype(np.float32)
    best = loaded.best_cosines([7, 5, 3], query)
    assert best[0] == pytest.approx(1.0, abs=1e-2)  # its second sentence is the query
    assert best[1] == -np.inf  # no sentences stored
    assert best[2] < best[0]


def test_rows_must_be_grouped_by_chunk():
    with pytest.raises(ValueError, match="sorted"):
        SentenceVectors(np.array([2, 1]), np.zeros((2, 2)), _rows(2, 3))


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "owls.txt").write_text(
        "Owls hunt at night. Their feathers are soft and silent. Barn owls nest in old buildings."
    )
    (docs / "bees.txt").write_text("Bees make honey. A hive has one queen. Worker bees gather pollen.")
    (docs / "one.txt").write_text("A single sentence document about tides.")
    return docs


def _job(tmp_path, embedder, sentence_vectors=True):
    return IngestJob(
        IndexStore(tmp_path / "ix"), embedder, TextSplitter(100, 0), sentence_vectors=sentence_vectors
    )


def test_ingest_stores_every_chunks_sentences_and_reembeds_only_changes(tmp_path, folder):
    embedder = CountingEmbedder()
    job = _job(tmp_path, embedder)
    first = job.run(folder, "c")
    index = job.store.load("c")
    assert index.sentences is not None
    # The one-sentence document's sentence is its chunk: embedded once.
    assert embedder.texts.count("A single sentence document about tides.") == 1
    assert first.sentences_embedded == len(embedder.texts) - first.embedded > 0
    for chunk in index.chunks.values():
        rows = index.sentences.of_chunk(chunk.id)
        assert [tuple(s) for s in rows.spans.tolist()] == list(split_sentences(chunk.text))
        texts = [chunk.text[s:e] for s, e in rows.spans.tolist()]
        np.testing.assert_allclose(rows.vectors, FakeEmbedder(dim=DIM).embed_documents(texts), atol=1e-3)
    embedder.texts.clear()

    again = job.run(folder, "c")
    assert embedder.texts == [] and again.sentences_embedded == 0 and again.version == first.version

    (folder / "bees.txt").write_text("Bees make honey. Drones do not sting.")
    changed = job.run(folder, "c")
    # The changed chunk's sentences are embedded again (rows are reused per unchanged chunk text).
    assert changed.sentences_embedded == 2 and "Drones do not sting." in embedder.texts
    assert "Owls hunt at night." not in embedder.texts  # unchanged documents keep their rows
    (folder / "owls.txt").unlink()
    job.run(folder, "c")
    index = job.store.load("c")
    assert index.sentences is not None
    assert set(index.sentences.chunk_ids.tolist()) == set(index.chunks)  # the owls' rows went with them


def test_a_collection_without_sentence_vectors_gets_them_at_its_next_write(tmp_path, folder):
    without = _job(tmp_path, CountingEmbedder(), sentence_vectors=False)
    without.run(folder, "c")
    assert without.store.load("c").sentences is None

    embedder = CountingEmbedder()
    job = _job(tmp_path, embedder)
    assert job.run(folder, "c").sentences_embedded == 0  # unchanged: nothing written, nothing embedded
    (folder / "new.txt").write_text("Comets have tails. They orbit the Sun.")
    summary = job.run(folder, "c")
    index = job.store.load("c")
    assert index.sentences is not None and set(index.sentences.chunk_ids.tolist()) == set(index.chunks)
    assert "sentence vectors added" in (summary.reembedded or "")
    assert "Owls hunt at night." in embedder.texts  # an old document's sentences, embedded this once

    (folder / "new.txt").write_text("Comets have long tails.")
    dropped = without.run(folder, "c")
    assert without.store.load("c").sentences is None
    assert "sentence vectors dropped" in (dropped.reembedded or "")


def _collection(
    tmp_path, texts: dict[int, str], chunk_vectors: np.ndarray, sentences: SentenceVectors | None
):
    chunks = {cid: Chunk(cid, f"d{cid}.txt", 0, text) for cid, text in texts.items()}
    index = new_faiss_index(DIM)
    index.add_with_ids(chunk_vectors.astype(np.float32), np.array(list(texts), dtype=np.int64))
    manifest = Manifest(
        collection="c",
        embedding=EmbeddingInfo(model=FakeEmbedder.model_id, dim=DIM),
        splitter=SplitterInfo(name="test", chunk_size=100, chunk_overlap=0),
        documents={c.doc: DocumentEntry(sha256="0" * 64, chunk_ids=[c.id]) for c in chunks.values()},
        next_chunk_id=len(chunks),
    )
    store = IndexStore(tmp_path / "ix")
    store.write(CollectionIndex(manifest, index, chunks, sentences=sentences))
    return CollectionCache(store)


def test_dense_ranking_takes_a_chunks_best_sentence(tmp_path):
    """Chunk 0's whole-text vector is closer to the question than chunk 1's, but one sentence of
    chunk 1 is the question itself: with sentence scoring chunk 1 comes first."""
    embedder = FakeEmbedder(dim=DIM)
    question = "where do barn owls nest"
    q = embedder.embed_query(question)
    noise = _rows(2, 7).astype(np.float32)
    chunk_vectors = np.stack([0.6 * q + 0.8 * noise[0], 0.3 * q + 0.95 * noise[1]])
    chunk_vectors /= np.linalg.norm(chunk_vectors, axis=1, keepdims=True)
    texts = {0: "Unrelated words here. More of them.", 1: "Something else first. Where do barn owls nest?"}
    sentences = SentenceVectors.from_chunks(
        {
            0: ChunkSentences(np.array([[0, 21], [22, 35]], np.int32), _rows(2, 8)),
            1: ChunkSentences(
                np.array([[0, 21], [22, 46]], np.int32), np.stack([_rows(1, 9)[0], q]).astype(np.float16)
            ),
        },
        DIM,
    )
    cache = _collection(tmp_path, texts, chunk_vectors, sentences)
    index = cache.get("c")
    assert [cid for cid, _ in by_dense_score(index, sentences, q, [0, 1])] == [1, 0]
    # Without sentence vectors, the chunks' cosines alone: chunk 0 first.
    assert [cid for cid, _ in by_dense_score(index, None, q, [0, 1])] == [0, 1]
    retriever = Retriever(cache, embedder)
    dense = RetrievalOptions(mode=RetrievalMode.dense)
    assert [p.id for p in retriever.run(question, "c", 2, dense)] == [1, 0]
    chunk_only = RetrievalOptions(mode=RetrievalMode.dense, sentence_scoring=False)
    passages = retriever.run(question, "c", 2, chunk_only)
    assert [p.id for p in passages] == [0, 1]
    # ``score`` stays the chunk's cosine, whatever ranked it; ``relevance``, which the thresholds
    # compare, is the best of it and the chunk's best sentence.
    assert passages[0].score == pytest.approx(float(chunk_vectors[0] @ q), abs=1e-5)
    assert passages[1].sentences is not None and len(passages[1].sentences.spans) == 2
    assert passages[1].sentence_score == pytest.approx(1.0, abs=1e-2)
    assert passages[1].relevance == passages[1].sentence_score > passages[1].score
    assert passages[0].relevance == max(passages[0].score, passages[0].sentence_score or -1.0)


def test_evidence_reads_stored_vectors_and_embeds_only_the_rest(tmp_path, folder):
    job = _job(tmp_path, CountingEmbedder())
    job.run(folder, "c")
    retriever = Retriever(CollectionCache(job.store), job.embedder)
    passages = retriever.run("Where do barn owls nest?", "c", 3, RetrievalOptions(mode=RetrievalMode.hybrid))
    assert all(p.sentences is not None for p in passages)

    counting = CountingEmbedder()
    evidence = Evidence.build("Where do barn owls nest?", passages, counting)
    assert counting.texts == [] and len(evidence) > 0  # every sentence's vector was stored
    fresh = Evidence.build(
        "Where do barn owls nest?",
        [replace(p, sentences=None) for p in passages],
        counting,
    )
    assert len(counting.texts) == len(fresh)  # without them, each sentence is embedded
    np.testing.assert_allclose(evidence.vectors, fresh.vectors, atol=2e-3)



def test_a_collection_without_sentence_vectors_gets_sentence_scores_per_request(tmp_path, folder):
    """An older collection: the grounder embeds its passages' sentences (once, through its cache),
    giving the same relevance as stored vectors would, and the evidence stage reuses them."""
    question = "Where do barn owls nest?"
    job = _job(tmp_path, CountingEmbedder(), sentence_vectors=False)
    job.run(folder, "c")
    passages = Retriever(CollectionCache(job.store), job.embedder).run(question, "c", 3)
    assert all(p.sentences is None and p.sentence_score is None for p in passages)
    assert [p.relevance for p in passages] == [p.score for p in passages]

    counting = CountingEmbedder()
    scored = Grounder(counting).with_sentence_scores(question, passages)
    assert [p.id for p in scored] == [p.id for p in passages]
    assert sorted(counting.texts) == sorted(
        p.text[s:e] for p in passages for s, e in split_sentences(p.text)
    )
    stored_job = _job(tmp_path / "stored", CountingEmbedder())
    stored_job.run(folder, "c")
    stored = Retriever(CollectionCache(stored_job.store), stored_job.embedder).run(question, "c", 3)
    assert [p.id for p in stored] == [p.id for p in scored]
    for fresh, kept in zip(scored, stored):
        assert fresh.sentence_score == pytest.approx(kept.sentence_score, abs=2e-3)
    counting.texts.clear()
    assert Grounder(counting).with_sentence_scores(question, scored) == scored  # nothing left to embed
    Evidence.build(question, scored, counting)
    assert counting.texts == []  # the evidence stage read the vectors the grounder made
