"""The retriever over a collection written by the store: modes, MMR, scores and clear errors.

Deterministic fake embeddings keep this fast; the real models are measured in test_retrieval_floors.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.core.embeddings import EmbeddingModel
from app.core.lexical import LexicalIndexMissing
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
from app.rag.retrieval import EmbeddingModelMismatch, RetrievalMode, RetrievalOptions, Retriever
from tests.fakes import UnitFakeEmbedding

DIM = 16
TEXTS = {
    "mailbox.txt": "우체통은 빨간색이다. 집배원이 편지를 모은다.",
    "kimchi.txt": "김치는 배추를 절여 발효시킨 음식이다.",
    "rocket.txt": "The Saturn V rocket carried Apollo 11 to the Moon in 1969.",
    "rocket-copy.txt": "The Saturn V rocket carried Apollo 11 to the Moon in 1969.",
    "bread.txt": "Sourdough bread rises slowly with wild yeast.",
}


@pytest.fixture
def embedder():
    return EmbeddingModel("fake-model", UnitFakeEmbedding(size=DIM), DIM)


@pytest.fixture
def collections(tmp_path, embedder):
    chunks = {i: Chunk(i, doc, 0, text) for i, (doc, text) in enumerate(TEXTS.items())}
    vectors = embedder.embed_documents([c.text for c in chunks.values()])
    index = new_faiss_index(DIM)
    index.add_with_ids(vectors, np.arange(len(chunks), dtype=np.int64))
    manifest = Manifest(
        collection="docs",
        embedding=EmbeddingInfo(model="fake-model", dim=DIM),
        splitter=SplitterInfo(name="test", chunk_size=100, chunk_overlap=0),
        documents={c.doc: DocumentEntry(sha256="0" * 64, chunk_ids=[c.id]) for c in chunks.values()},
        next_chunk_id=len(chunks),
    )
    store = IndexStore(tmp_path)
    store.write(CollectionIndex(manifest, index, chunks))
    return CollectionCache(store)


def test_bm25_mode_finds_exact_terms(collections, embedder):
    retriever = Retriever(collections, embedder)
    passages = retriever.run("우체통 색깔", "docs", 3, RetrievalOptions(mode=RetrievalMode.bm25))
    assert passages[0].doc == "mailbox.txt"
    passages = retriever.run("sourdough yeast", "docs", 3, RetrievalOptions(mode=RetrievalMode.bm25))
    assert [p.doc for p in passages] == ["bread.txt"]


def test_scores_are_cosine_in_every_mode(collections, embedder):
    retriever = Retriever(collections, embedder)
    query = embedder.embed_query("Apollo rocket")
    for mode in RetrievalMode:
        passages = retriever.run("Apollo rocket", "docs", 5, RetrievalOptions(mode=mode))
        assert [p.rank for p in passages] == list(range(1, len(passages) + 1))
        for p in passages:
            vector = np.asarray(embedder.embed_documents([p.text])[0])
            assert p.score == pytest.approx(float(vector @ query), abs=1e-5)


def test_hybrid_with_full_lexical_weight_follows_bm25(collections, embedder):
    retriever = Retriever(collections, embedder)
    bm25 = retriever.run("Saturn rocket Moon", "docs", 2, RetrievalOptions(mode=RetrievalMode.bm25))
    hybrid = retriever.run(
        "Saturn rocket Moon", "docs", 2, RetrievalOptions(mode=RetrievalMode.hybrid, dense_weight=0.0)
    )
    assert [p.id for p in hybrid] == [p.id for p in bm25]


def test_mmr_keeps_one_of_two_identical_chunks(collections, embedder):
    retriever = Retriever(collections, embedder)
    plain = retriever.run("Saturn V rocket Apollo", "docs", 2, RetrievalOptions(mode=RetrievalMode.bm25))
    assert {p.doc for p in plain} == {"rocket.txt", "rocket-copy.txt"}
    # Hybrid candidates include non-matching chunks from the dense side for MMR to choose from.
    options = RetrievalOptions(mode=RetrievalMode.hybrid, dense_weight=0.1)
    top = retriever.run("Saturn V rocket Apollo", "docs", 2, options)
    assert {p.doc for p in top} == {"rocket.txt", "rocket-copy.txt"}
    diverse = retriever.run("Saturn V rocket Apollo", "docs", 2, replace(options, diversity=0.5))
    assert len({p.text for p in diverse}) == 2


def test_request_overrides_keep_other_defaults(collections, embedder):
    retriever = Retriever(collections, embedder, RetrievalOptions(dense_weight=0.2, candidates=7))
    options = retriever.options(RetrievalMode.bm25, None)
    assert (options.mode, options.dense_weight, options.diversity, options.candidates) == (
        RetrievalMode.bm25, 0.2, 0.0, 7,
    )
    assert retriever.options(None, 0.4).mode is RetrievalMode.hybrid


def test_wrong_embedding_model_is_a_clear_error(collections):
    other = EmbeddingModel("other-model", UnitFakeEmbedding(size=DIM), DIM)
    with pytest.raises(EmbeddingModelMismatch, match="embedded with 'fake-model'.*'other-model'"):
        Retriever(collections, other).run("anything", "docs", 3)


def test_collection_without_bm25_index_explains_itself(collections, embedder, tmp_path):
    index = collections.get("docs")
    index.lexical = None  # as loaded from a version written before BM25 was stored
    retriever = Retriever(collections, embedder)
    assert retriever.run("rocket", "docs", 2, RetrievalOptions(mode=RetrievalMode.dense))
    with pytest.raises(LexicalIndexMissing, match="re-ingest"):
        retriever.run("rocket", "docs", 2, RetrievalOptions(mode=RetrievalMode.hybrid))
