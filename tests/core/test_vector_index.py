"""FAISS index types: IVF written, loaded and searched by chunk id; old manifests load as flat;
auto picks by size; an incremental ingest into an IVF collection embeds only new texts."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from app.core import vector_index
from app.core.config import Settings
from app.core.store import CollectionIndex, IndexStore, new_faiss_index
from app.core.vector_index import FLAT, IVF, VectorIndexInfo, VectorIndexPolicy
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.core.test_store import DIM, make_collection
from tests.fakes import FakeEmbedder

FORCED_IVF = VectorIndexPolicy("ivf")


def clustered(n: int, dim: int = 16, centres: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centres, dim))
    vectors = middle[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_forced_ivf_round_trips_with_type_in_manifest(tmp_path):
    store = IndexStore(tmp_path, FORCED_IVF)
    original = make_collection("docs", 300)
    exact = original.vectors_for(list(range(300)))
    store.write(original)

    raw = json.loads(next(tmp_path.glob("docs/v*/manifest.json")).read_text())
    assert raw["vector_index"]["type"] == IVF
    loaded = store.load("docs")
    info = loaded.manifest.vector_index
    assert info.type == IVF and info.trained_on == 300
    assert isinstance(loaded.index, faiss.IndexIVFFlat)
    assert loaded.index.nlist == info.nlist and loaded.index.nprobe == info.nprobe
    # IVF keeps the vectors uncompressed: reconstruct by chunk id gives them back exactly.
    np.testing.assert_array_equal(loaded.vectors_for(list(range(300))), exact)
    hit = loaded.search(exact[123], 5)[0]
    assert hit.chunk.id == 123 and hit.score == pytest.approx(1.0, abs=1e-5)


def test_ivf_search_matches_exact_search_when_every_list_is_probed(tmp_path):
    vectors = clustered(2000)
    ids = np.arange(1000, 3000, dtype=np.int64)  # chunk ids, not row numbers
    flat = new_faiss_index(vectors.shape[1])
    flat.add_with_ids(vectors, ids)
    info = VectorIndexInfo(type=IVF, nlist=32, nprobe=32, trained_on=2000)
    ivf = vector_index.build(info, vectors.shape[1], ids, vectors)
    queries = clustered(20, seed=1)
    _, exact_ids = flat.search(queries, 10)
    _, ivf_ids = ivf.search(queries, 10)
    np.testing.assert_array_equal(ivf_ids, exact_ids)
    # With few lists probed the result is approximate, but mostly the same neighbours.
    ivf.nprobe = 4
    _, approx_ids = ivf.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_ids, exact_ids)])
    assert 0.5 < recall <= 1.0


def test_all_vectors_of_both_types_are_the_added_ones():
    vectors = clustered(500)
    ids = np.arange(500, dtype=np.int64) * 3
    for info in (VectorIndexInfo(), VectorIndexInfo(type=IVF, nlist=8, nprobe=2, trained_on=500)):
        index = vector_index.build(info, vectors.shape[1], ids, vectors)
        index.remove_ids(np.asarray([0, 3], dtype=np.int64))
        got_ids, got = vector_index.all_vectors(index)
        order = np.argsort(got_ids)
        np.testing.assert_array_equal(got_ids[order], ids[2:])
        np.testing.assert_array_equal(got[order], vectors[2:])


def test_manifest_without_vector_index_loads_as_flat(tmp_path):
    store = IndexStore(tmp_path)
    collection = make_collection("old", 30)
    store.write(collection)
    path = next(tmp_path.glob("old/v*/manifest.json"))
    raw = json.loads(path.read_text())
    del raw["vector_index"]  # as written before index types existed
    path.write_text(json.dumps(raw))

    loaded = store.load("old")
    assert loaded.manifest.vector_index == VectorIndexInfo(type=FLAT)
    assert isinstance(loaded.index, faiss.IndexIDMap2)
    query = collection.vectors_for([4])[0]
    assert loaded.search(query, 1)[0].chunk.id == 4


def test_auto_picks_flat_below_threshold_ivf_above_and_retrains_on_growth(tmp_path):
    store = IndexStore(tmp_path, VectorIndexPolicy("auto", ivf_min_chunks=100))
    store.write(make_collection("c", 90))
    assert store.read_manifest("c").vector_index.type == FLAT

    store.write(make_collection("c", 150))
    first = store.read_manifest("c").vector_index
    assert first.type == IVF and first.trained_on == 150

    # Within the hysteresis band an IVF collection stays IVF, with the same clusters.
    loaded = store.load("c")
    shrunk = _without(loaded, list(range(80)))
    store.write(shrunk)
    kept = store.read_manifest("c").vector_index
    assert kept == first
    assert store.load("c").index.ntotal == 70

    # Grown far past the size its clusters were trained for: trained again, with more lists,
    # from the vectors it holds.
    bigger = _without(make_collection("c", 2000, seed=5), list(range(80)))  # chunks 80..1999
    grown_index = faiss.deserialize_index(faiss.serialize_index(store.load("c").index))
    new_ids = list(range(150, 2000))
    grown_index.add_with_ids(bigger.vectors_for(new_ids), np.asarray(new_ids, dtype=np.int64))
    expected = {i: grown_index.reconstruct(i) for i in (80, 150, 1999)}
    store.write(CollectionIndex(bigger.manifest, grown_index, bigger.chunks))
    grown = store.read_manifest("c").vector_index
    assert grown.type == IVF and grown.trained_on == 1920 and grown.nlist > first.nlist
    reloaded = store.load("c")
    assert reloaded.index.nlist == grown.nlist
    for i, vector in expected.items():
        np.testing.assert_array_equal(reloaded.vectors_for([i])[0], vector)

    # Far below the threshold: flat again.
    store.write(make_collection("c", 20))
    assert store.read_manifest("c").vector_index.type == FLAT
    assert isinstance(store.load("c").index, faiss.IndexIDMap2)


def _without(collection: CollectionIndex, ids: list[int]) -> CollectionIndex:
    """A copy of ``collection`` without these chunks, its index copied as an ingest copies it."""
    index = faiss.deserialize_index(faiss.serialize_index(collection.index))
    index.remove_ids(np.asarray(ids, dtype=np.int64))
    manifest = collection.manifest.model_copy(deep=True)
    for entry in manifest.documents.values():
        entry.chunk_ids = [i for i in entry.chunk_ids if i not in set(ids)]
    chunks = {i: c for i, c in collection.chunks.items() if i not in set(ids)}
    return CollectionIndex(manifest, index, chunks)


def test_nprobe_setting_applies_without_retraining(tmp_path):
    IndexStore(tmp_path, FORCED_IVF).write(make_collection("c", 400))
    before = IndexStore(tmp_path).read_manifest("c").vector_index
    store = IndexStore(tmp_path, VectorIndexPolicy("ivf", nprobe=3))
    store.write(store.load("c"))
    after = store.read_manifest("c").vector_index
    assert after.nprobe == 3 and after.nlist == before.nlist and after.trained_on == before.trained_on
    assert store.load("c").index.nprobe == 3


def test_settings_give_the_policy(monkeypatch):
    monkeypatch.setenv("RAGQA_INDEX_TYPE", "ivf")
    monkeypatch.setenv("RAGQA_INDEX_IVF_MIN_CHUNKS", "5000")
    monkeypatch.setenv("RAGQA_INDEX_IVF_NPROBE", "24")
    assert Settings().vector_index_policy() == VectorIndexPolicy("ivf", 5000, 24)
    monkeypatch.setenv("RAGQA_INDEX_TYPE", "hnsw")
    with pytest.raises(ValueError, match="index_type"):
        Settings()


def test_default_nprobe_and_nlist_grow_with_size():
    assert vector_index.ideal_nlist(1_000_000) > vector_index.ideal_nlist(100_000)
    for nlist in (16, 500, 2000, 4000):
        assert 1 <= vector_index.default_nprobe(nlist) <= nlist


def test_incremental_ingest_into_ivf_embeds_only_new_texts(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for d in range(12):
        sentences = " ".join(
            f"Document {d} sentence {s} mentions topic{(d * 7 + s) % 23}." for s in range(40)
        )
        (docs / f"doc{d:02d}.txt").write_text(sentences)
    embedder = FakeEmbedder(dim=DIM * 4)
    store = IndexStore(tmp_path / "indexes", FORCED_IVF)
    job = IngestJob(store, embedder, TextSplitter(200, 20))
    first = job.run(docs, "c")
    assert first.embedded == first.chunks > 50
    assert store.read_manifest("c").vector_index.type == IVF
    before = store.load("c")

    (docs / "doc00.txt").unlink()
    (docs / "new.txt").write_text("A brand new document about zeppelins and airships.")
    # A moved document: same text under a new name, so its vectors are reused, not embedded.
    (docs / "doc01.txt").rename(docs / "moved.txt")
    second = job.run(docs, "c")
    assert second.deleted == 2 and second.added == 2
    new_chunks = len(store.read_manifest("c").documents["new.txt"].chunk_ids)
    assert second.embedded == new_chunks

    after = store.load("c")
    assert isinstance(after.index, faiss.IndexIVFFlat)
    moved = after.manifest.documents["moved.txt"].chunk_ids
    old = before.manifest.documents["doc01.txt"].chunk_ids
    np.testing.assert_array_equal(after.vectors_for(moved), before.vectors_for(old))
    query = embedder.embed_documents(["A brand new document about zeppelins and airships."])[0]
    assert after.search(query, 1)[0].chunk.doc == "new.txt"
    assert after.index.ntotal == len(after.chunks) == after.manifest.chunk_count


def test_service_writes_with_the_configured_index_type(tmp_path):
    from tests.fakes import fake_services, fake_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    for d in range(3):
        (docs / f"d{d}.txt").write_text(" ".join(f"Doc {d} line {i} about item{i}." for i in range(60)))
    services = fake_services(fake_settings(tmp_path / "indexes", index_type="ivf"))
    services.documents.job.run(docs, "c")
    assert services.store.read_manifest("c").vector_index.type == IVF
    before = services.store.read_manifest("c").chunk_count
    services.documents.delete_document("c", "d0.txt")
    after = services.store.load("c")
    assert after.manifest.vector_index.type == IVF and isinstance(after.index, faiss.IndexIVFFlat)
    assert after.index.ntotal == after.manifest.chunk_count < before
