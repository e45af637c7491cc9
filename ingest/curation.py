"""Near-duplicate chunks and outliers: the one definition, for the ingest report
(``ragqa ingest``, ``--outliers``) and the embedding map alike.

- A **near-duplicate** is a pair of chunks from different documents whose cosine similarity is
  at least ``NEAR_DUPLICATE_COSINE``, among each chunk's ``NEIGHBOURS_SEARCHED`` nearest chunks.
- An **outlier** is a chunk whose cosine similarity to its nearest other chunk is more than
  ``OUTLIER_MADS`` scaled median absolute deviations below the median of that similarity over
  the chunks considered: robust to the collection's own spread. Fewer than 3 chunks: none.

Vectors are normalised, so the inner product the index returns is the cosine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import faiss
import numpy as np

from app.core.store import CollectionIndex

NEAR_DUPLICATE_COSINE = 0.98
NEIGHBOURS_SEARCHED = 10
OUTLIER_MADS = 3.0
# 1.4826 x MAD estimates the standard deviation of normally distributed values.
_MAD_TO_SIGMA = 1.4826
_QUERY_BATCH = 1024


# The vectors of a batch of chunk ids.
VectorsOf = Callable[[list[int]], np.ndarray]


def _search(index: faiss.Index, ids: Sequence[int], vectors_of: VectorsOf, k: int):
    """(query id, scores, neighbour ids) per query, best first, searched in batches."""
    for start in range(0, len(ids), _QUERY_BATCH):
        batch = list(ids[start : start + _QUERY_BATCH])
        scores, found = index.search(vectors_of(batch), k)
        yield from zip(batch, scores, found)


def near_duplicate_pairs(
    index: faiss.Index,
    ids: Sequence[int],
    vectors_of: VectorsOf,
    doc_of: Callable[[int], str],
    threshold: float = NEAR_DUPLICATE_COSINE,
    k: int = NEIGHBOURS_SEARCHED,
) -> dict[tuple[int, int], float]:
    """{(a, b): cosine} with a < b: the near-duplicates of the chunks ``ids`` among the chunks
    of ``index``; ``doc_of`` names a chunk's document."""
    if not len(ids) or index.ntotal < 2:
        return {}
    k = min(k + 1, index.ntotal)  # +1: a chunk finds itself first
    pairs: dict[tuple[int, int], float] = {}
    for query_id, row_scores, row_ids in _search(index, ids, vectors_of, k):
        doc = doc_of(query_id)
        for score, other in zip(row_scores, row_ids):
            if other == -1 or score < threshold:
                break  # results come best first
            other = int(other)
            if other == query_id or doc_of(other) == doc:
                continue
            pairs[(min(query_id, other), max(query_id, other))] = float(score)
    return pairs


def nearest_cosines(index: faiss.Index, ids: Sequence[int], vectors_of: VectorsOf) -> np.ndarray:
    """Each chunk's cosine similarity to its nearest other chunk in ``index``."""
    nearest = np.empty(len(ids), dtype=np.float32)
    for row, (query_id, row_scores, row_ids) in enumerate(_search(index, ids, vectors_of, 2)):
        others = [s for s, i in zip(row_scores, row_ids) if i not in (-1, query_id)]
        nearest[row] = others[0] if others else row_scores[-1]
    return nearest


def outlier_mask(nearest: np.ndarray, z: float = OUTLIER_MADS) -> np.ndarray:
    """Which of these nearest-neighbour similarities are outliers (see the module docstring)."""
    if len(nearest) < 3:
        return np.zeros(len(nearest), dtype=bool)
    median = float(np.median(nearest))
    mad = float(np.median(np.abs(nearest - median))) * _MAD_TO_SIGMA
    return nearest < median - z * max(mad, 1e-6)


def flags(vectors: np.ndarray, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(near_duplicate, outlier) per row of ``vectors`` (the chunks of documents ``docs``),
    among these vectors only: for the embedding map, which may show a sample."""
    n = len(vectors)
    near_duplicate, outlier = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n < 2:
        return near_duplicate, outlier
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])  # ids are row numbers
    index.add(vectors)
    rows = list(range(n))

    def rows_of(batch: list[int]) -> np.ndarray:
        return vectors[batch]

    for a, b in near_duplicate_pairs(index, rows, rows_of, docs.__getitem__):
        near_duplicate[[a, b]] = True
    outlier = outlier_mask(nearest_cosines(index, rows, rows_of))
    return near_duplicate, outlier


def _chunk_ref(index: CollectionIndex, chunk_id: int) -> dict:
    chunk = index.chunks[chunk_id]
    ref = {"doc": chunk.doc, "id": chunk.id, "start": chunk.start}
    if chunk.page is not None:
        ref["page"] = chunk.page
    return ref


def _doc_of(index: CollectionIndex) -> Callable[[int], str]:
    return lambda chunk_id: index.chunks[chunk_id].doc


def near_duplicates(
    index: CollectionIndex,
    chunk_ids: list[int],
    threshold: float = NEAR_DUPLICATE_COSINE,
    k: int = NEIGHBOURS_SEARCHED,
) -> list[dict]:
    """The near-duplicate pairs with one chunk in ``chunk_ids``, highest score first, each once."""
    if not chunk_ids:
        return []
    pairs = near_duplicate_pairs(index.index, chunk_ids, index.vectors_for, _doc_of(index), threshold, k)
    return [
        {"score": round(score, 4), "a": _chunk_ref(index, a), "b": _chunk_ref(index, b)}
        for (a, b), score in sorted(pairs.items(), key=lambda item: -item[1])
    ]


def outliers(index: CollectionIndex, z: float = OUTLIER_MADS, limit: int = 20) -> list[dict]:
    """The collection's outliers, lowest nearest-neighbour similarity first. Costs one k=2
    search per chunk, so ``ragqa ingest`` runs it only with ``--outliers``."""
    if index.index.ntotal < 3:
        return []
    ids = sorted(index.chunks)
    nearest = nearest_cosines(index.index, ids, index.vectors_for)
    mask = outlier_mask(nearest, z)
    found = sorted((float(s), cid) for s, cid, out in zip(nearest, ids, mask) if out)
    return [{**_chunk_ref(index, cid), "nearest_cosine": round(score, 4)} for score, cid in found[:limit]]
