"""Which FAISS index a collection version searches with, and building it from the exact vectors.

Two types, both keyed by chunk id, both answering ``reconstruct(chunk id)`` with the exact
vector that was added (an ingest reuses the vectors of unchanged texts instead of embedding
them again):

- ``flat``: IndexIDMap2 over IndexFlatIP. Exact; a query reads every vector, which is cheap up
  to ~100k chunks (6-15 ms at 100k x 384 dimensions on the dev box, ~300 ms at 1M).
- ``ivf``: IndexIVFFlat (inner product) with a hash-table direct map. The vectors are split
  into ``nlist`` clusters and a query scans the ``nprobe`` nearest ones: ~1.3 ms at 1M (nprobe 31).
  The lists hold the vectors uncompressed (no PQ), so ``reconstruct`` stays exact.

``auto`` picks flat up to ``ivf_min_chunks`` chunks and IVF above. The chosen type and its
parameters are recorded in the manifest (``VectorIndexInfo``); a manifest without them was
written as flat. At write time the index is rebuilt from its exact vectors when the type the
policy asks for differs, or when an IVF collection has grown or shrunk so far since its
clusters were trained that its ``nlist`` no longer suits it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
from pydantic import BaseModel, Field

from app.core.config import DEFAULT_IVF_MIN_CHUNKS, IndexTypeSetting

FLAT = "flat"
IVF = "ivf"
IndexType = Literal["flat", "ivf"]

# An auto collection that went IVF goes back to flat only below this share of the threshold,
# so a collection near it does not flip type (and retrain) on every ingest.
_FLAT_AGAIN_BELOW = 0.5
# nlist = this x sqrt(chunks): 2,000 lists of ~500 vectors at 1M, 632 of ~160 at 100k.
_NLIST_PER_SQRT = 2.0
_MIN_NLIST = 16
# nprobe as a share of nlist, at least _MIN_NPROBE: recall@10 against exact search >= 0.95
# on real-plus-noise MiniLM vectors (bench/retrieve.py, docs/benchmarks.md).
_NPROBE_SHARE = 1 / 64
_MIN_NPROBE = 16
# k-means trains on at most this many vectors per list (FAISS warns below 39).
_TRAIN_PER_LIST = 64
# Retrain when the ideal nlist for today's size is off from the trained one by this factor.
_RETRAIN_FACTOR = 2.0


class VectorIndexInfo(BaseModel):
    """The manifest's record of the FAISS index type; absent (flat) in manifests written before it."""

    type: IndexType = FLAT
    nlist: int | None = Field(None, ge=1)
    nprobe: int | None = Field(None, ge=1)
    # Chunks when the IVF clusters were trained: growth since then decides a retrain.
    trained_on: int | None = Field(None, ge=0)


def ideal_nlist(chunks: int) -> int:
    return max(_MIN_NLIST, round(_NLIST_PER_SQRT * math.sqrt(chunks)))


def default_nprobe(nlist: int) -> int:
    return min(nlist, max(_MIN_NPROBE, round(nlist * _NPROBE_SHARE)))


@dataclass(frozen=True, slots=True)
class VectorIndexPolicy:
    """RAGQA_INDEX_TYPE and friends: which index type a collection of n chunks is written as."""

    type: IndexTypeSetting = "auto"
    ivf_min_chunks: int = DEFAULT_IVF_MIN_CHUNKS
    nprobe: int | None = None  # None: default_nprobe(nlist)

    def wanted_type(self, chunks: int, current: IndexType) -> IndexType:
        if self.type != "auto":
            return self.type
        if chunks > self.ivf_min_chunks:
            return IVF
        if current == IVF and chunks >= self.ivf_min_chunks * _FLAT_AGAIN_BELOW:
            return IVF
        return FLAT

    def plan(self, index: faiss.Index, info: VectorIndexInfo) -> tuple[VectorIndexInfo, bool]:
        """What ``index`` (recorded as ``info``) is written as: (its record, whether to rebuild it)."""
        chunks, current = index.ntotal, index_type(index)
        wanted = self.wanted_type(chunks, current) if chunks else FLAT  # IVF trains on vectors
        if wanted == FLAT:
            return VectorIndexInfo(), current != FLAT
        # k-means needs a vector per list: a small forced-IVF collection gets fewer lists.
        nlist = min(ideal_nlist(chunks), chunks)
        nprobe = min(nlist, self.nprobe or default_nprobe(nlist))
        if current == IVF and info.type == IVF and info.nlist:
            if 1 / _RETRAIN_FACTOR <= nlist / info.nlist <= _RETRAIN_FACTOR:
                # The trained clusters still suit this size: keep them, maybe with a new nprobe.
                return info.model_copy(
                    update={"nprobe": min(info.nlist, self.nprobe or default_nprobe(info.nlist))}
                ), False
        return VectorIndexInfo(type=IVF, nlist=nlist, nprobe=nprobe, trained_on=chunks), True


def set_search_threads(threads: int) -> None:
    """The OpenMP threads FAISS may use in this process: a service answers requests side by
    side, and FAISS's idle threads spin-wait on the cores the other requests need."""
    faiss.omp_set_num_threads(threads)


def index_type(index: faiss.Index) -> IndexType:
    return IVF if isinstance(index, faiss.IndexIVF) else FLAT


def new_flat_index(dim: int) -> faiss.IndexIDMap2:
    # Inner product on normalised vectors is cosine similarity; IDMap2 allows remove_ids and
    # reconstruct by chunk id.
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def all_vectors(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """(chunk ids, their exact vectors) of a flat or IVF index."""
    if isinstance(index, faiss.IndexIDMap2):
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        flat = faiss.downcast_index(index.index)
        vectors = flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.zeros((0, index.d), np.float32)
        return ids, np.asarray(vectors, dtype=np.float32)
    if isinstance(index, faiss.IndexIVF):
        invlists = index.invlists
        ids_parts, vector_parts = [], []
        for lst in range(index.nlist):
            size = invlists.list_size(lst)
            if not size:
                continue
            ids_parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
            codes = faiss.rev_swig_ptr(invlists.get_codes(lst), size * invlists.code_size)
            vector_parts.append(np.frombuffer(codes, dtype=np.float32).reshape(size, index.d).copy())
        if not ids_parts:
            return np.zeros(0, np.int64), np.zeros((0, index.d), np.float32)
        return np.concatenate(ids_parts).astype(np.int64), np.vstack(vector_parts)
    raise TypeError(f"unsupported FAISS index {type(index).__name__}")


def build(
    info: VectorIndexInfo, dim: int, ids: np.ndarray, vectors: np.ndarray, seed: int = 0
) -> faiss.Index:
    """A new index of ``info``'s type over these (chunk id, exact vector) pairs."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if info.type == FLAT:
        index = new_flat_index(dim)
    else:
        assert info.nlist is not None and info.nprobe is not None
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, info.nlist, faiss.METRIC_INNER_PRODUCT)
        sample = min(len(vectors), info.nlist * _TRAIN_PER_LIST)
        rows = (
            np.random.default_rng(seed).choice(len(vectors), sample, replace=False)
            if sample < len(vectors)
            else slice(None)
        )
        index.cp.min_points_per_centroid = 1  # a tiny forced-IVF collection trains without warnings
        index.train(vectors[rows])
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove_ids by chunk id
        index.nprobe = info.nprobe
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def rebuild(index: faiss.Index, info: VectorIndexInfo) -> faiss.Index:
    ids, vectors = all_vectors(index)
    return build(info, index.d, ids, vectors)


def configure(index: faiss.Index, info: VectorIndexInfo) -> None:
    """Apply the manifest's search parameters to an index read from disk."""
    if isinstance(index, faiss.IndexIVF) and info.nprobe:
        index.nprobe = info.nprobe
