"""Curation reports from the stored embeddings: near-duplicate chunks and outliers."""

from __future__ import annotations

import numpy as np

from app.core.store import CollectionIndex

NEAR_DUPLICATE_COSINE = 0.98
_QUERY_BATCH = 1024


def _chunk_ref(index: CollectionIndex, chunk_id: int) -> dict:
    chunk = index.chunks[chunk_id]
    ref = {"doc": chunk.doc, "id": chunk.id, "start": chunk.start}
    if chunk.page is not None:
        ref["page"] = chunk.page
    return ref


def near_duplicates(
    index: CollectionIndex, chunk_ids: list[int], threshold: float = NEAR_DUPLICATE_COSINE, k: int = 10
) -> list[dict]:
    """Pairs of chunks from different documents with cosine >= threshold, one of them in ``chunk_ids``.

    Vectors are normalised, so the inner product the index returns is the cosine. Sorted by
    score, highest first; each pair once.
    """
    if not chunk_ids or index.index.ntotal < 2:
        return []
    k = min(k + 1, index.index.ntotal)  # +1: a chunk finds itself first
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, len(chunk_ids), _QUERY_BATCH):
        batch = chunk_ids[start : start + _QUERY_BATCH]
        scores, ids = index.index.search(index.vectors_for(batch), k)
        for query_id, row_scores, row_ids in zip(batch, scores, ids):
            doc = index.chunks[query_id].doc
            for score, other in zip(row_scores, row_ids):
                if other == -1 or score < threshold:
                    break  # results come best first
                other = int(other)
                if other == query_id or index.chunks[other].doc == doc:
                    continue
                pairs[(min(query_id, other), max(query_id, other))] = float(score)
    return [
        {"score": round(score, 4), "a": _chunk_ref(index, a), "b": _chunk_ref(index, b)}
        for (a, b), score in sorted(pairs.items(), key=lambda item: -item[1])
    ]


def outliers(index: CollectionIndex, z: float = 3.0, limit: int = 20) -> list[dict]:
    """Chunks far from every other chunk: nearest-neighbour cosine unusually low for the collection.

    "Unusually low" is robust to the collection's own spread: more than ``z`` scaled median
    absolute deviations below the median nearest-neighbour similarity. Costs one k=2 search
    per chunk, so it is opt-in.
    """
    n = index.index.ntotal
    if n < 3:
        return []
    ids = sorted(index.chunks)
    nearest = np.empty(n, dtype=np.float32)
    for start in range(0, n, _QUERY_BATCH):
        batch = ids[start : start + _QUERY_BATCH]
        scores, found = index.index.search(index.vectors_for(batch), 2)
        for row, (query_id, row_scores, row_ids) in enumerate(zip(batch, scores, found)):
            others = [s for s, i in zip(row_scores, row_ids) if i not in (-1, query_id)]
            nearest[start + row] = others[0] if others else row_scores[-1]
    median = float(np.median(nearest))
    mad = float(np.median(np.abs(nearest - median))) * 1.4826
    cutoff = median - z * max(mad, 1e-6)
    found_outliers = sorted((float(s), cid) for s, cid in zip(nearest, ids) if s < cutoff)
    return [
        {**_chunk_ref(index, cid), "nearest_cosine": round(score, 4)}
        for score, cid in found_outliers[:limit]
    ]
