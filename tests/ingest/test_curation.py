"""Near-duplicates and outliers have one definition: `ragqa ingest` (its report and --outliers)
and the embedding map flag the same chunks on the same vectors (fast tier)."""

from __future__ import annotations

import sys
import types

import numpy as np

from app.core.store import (
    Chunk,
    CollectionIndex,
    DocumentEntry,
    EmbeddingInfo,
    Manifest,
    SplitterInfo,
    new_faiss_index,
)
from app.viz.embedding_map import project
from ingest import curation

DIM = 16
DOCS, PER_DOC = 4, 10


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def planted_collection() -> tuple[CollectionIndex, dict[str, set[int]]]:
    """Four documents, each a tight cluster of ten chunks, with planted cases."""
    rng = np.random.default_rng(0)
    bases = [unit(rng.normal(size=DIM)) for _ in range(DOCS)]
    vectors = [unit(bases[i // PER_DOC] + 0.25 * unit(rng.normal(size=DIM))) for i in range(DOCS * PER_DOC)]
    docs = [f"doc{i // PER_DOC}.txt" for i in range(DOCS * PER_DOC)]

    def near(v: np.ndarray, cosine: float) -> np.ndarray:
        other = rng.normal(size=DIM)
        other = unit(other - (other @ v) * v)  # orthogonal to v
        return unit(cosine * v + np.sqrt(1 - cosine**2) * other)

    vectors[15] = near(vectors[3], 0.995)  # doc1 copies a doc0 chunk: a near-duplicate pair
    vectors[7] = near(vectors[6], 0.995)  # the same within doc0: not a near-duplicate
    vectors[25] = near(vectors[12], 0.96)  # across documents, but under 0.98: not one either
    vectors[39] = unit(rng.normal(size=DIM))  # far from every cluster: an outlier
    n = len(vectors)
    index = new_faiss_index(DIM)
    index.add_with_ids(np.vstack(vectors), np.arange(n, dtype=np.int64))
    chunks = {i: Chunk(i, docs[i], 0, f"chunk {i}") for i in range(n)}
    manifest = Manifest(
        collection="planted",
        version="v1",
        embedding=EmbeddingInfo(model="test-model", dim=DIM),
        splitter=SplitterInfo(name="test", chunk_size=100, chunk_overlap=10),
        documents={
            d: DocumentEntry(sha256="0" * 64, chunk_ids=[i for i in range(n) if docs[i] == d])
            for d in set(docs)
        },
        next_chunk_id=n,
    )
    return CollectionIndex(manifest, index, chunks), {"near_duplicate": {3, 15}, "outlier": {39}}


class FirstTwoColumns:
    """Stands in for t-SNE, which takes tens of seconds here and plays no part in the flags."""

    def __init__(self, **_):
        pass

    def fit_transform(self, vectors):
        return vectors[:, :2]


def test_the_map_and_ingest_flag_the_same_chunks(monkeypatch):
    sklearn = types.ModuleType("sklearn")
    monkeypatch.setitem(sys.modules, "sklearn", sklearn)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", types.SimpleNamespace(TSNE=FirstTwoColumns))
    index, planted = planted_collection()
    ids = sorted(index.chunks)
    pairs = curation.near_duplicates(index, ids)
    ingest_dups = {p[side]["id"] for p in pairs for side in ("a", "b")}
    ingest_outliers = {o["id"] for o in curation.outliers(index)}
    assert ingest_dups == planted["near_duplicate"] and ingest_outliers == planted["outlier"]

    projection = project(index, max_points=len(ids))
    assert not projection.sampled
    map_dups = {int(c) for c, d in zip(projection.chunk_ids, projection.near_duplicate) if d}
    map_outliers = {int(c) for c, o in zip(projection.chunk_ids, projection.outlier) if o}
    assert (map_dups, map_outliers) == (ingest_dups, ingest_outliers)


def test_flags_need_enough_chunks():
    near_dup, outlier = curation.flags(np.eye(2, DIM, dtype=np.float32), ["a", "b"])
    assert not near_dup.any() and not outlier.any()
    assert curation.flags(np.zeros((0, DIM), dtype=np.float32), [])[0].shape == (0,)
