"""Sentence vectors, stored with each collection version: every chunk's sentences, embedded at ingest.

Two readers use them:
- the retriever scores a dense candidate by its best sentence as well as by its whole text: the
  embedding model reads only a chunk's first tokens (256 for MiniLM) and averages over the rest,
  so the one sentence that answers a question is easily drowned in a chunk about several things;
- the grounder checks answers against the passage sentences without embedding them per request.

The sentences are those of ``app.core.sentences.split_sentences`` on the chunk's text, the same
spans the evidence stage splits a passage into. Vectors are unit rows in float16: half the disk
and memory of float32, and cosines within about 1e-3 of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.sentences import split_sentences

SENTENCES_DIR = "sentences"
_FILES = ("chunk_ids.npy", "spans.npy", "vectors.npy")
Span = tuple[int, int]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class ChunkSentences:
    """One chunk's sentence spans (character offsets in its text) and their unit vectors."""

    spans: np.ndarray  # int32, (n, 2)
    vectors: np.ndarray  # float16, (n, dim)

    @classmethod
    def of(cls, spans: Sequence[Span], vectors: np.ndarray) -> ChunkSentences:
        """The stored form of a chunk's ``split_sentences`` spans and their unit vectors."""
        return cls(np.asarray(spans, dtype=np.int32).reshape(-1, 2), np.asarray(vectors).astype(np.float16))


class SentenceVectors:
    """The sentence vectors of one collection version, rows grouped by chunk id (ascending)."""

    def __init__(self, chunk_ids: np.ndarray, spans: np.ndarray, vectors: np.ndarray):
        if not (len(chunk_ids) == len(spans) == len(vectors)):
            raise ValueError("sentence vectors: chunk ids, spans and vectors differ in length")
        self.chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        self.spans = np.asarray(spans, dtype=np.int32).reshape(-1, 2)
        self.vectors = np.asarray(vectors, dtype=np.float16)
        if len(self.chunk_ids) > 1 and not bool((self.chunk_ids[1:] >= self.chunk_ids[:-1]).all()):
            raise ValueError("sentence vectors: rows must be sorted by chunk id")

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @classmethod
    def from_chunks(cls, by_chunk: dict[int, ChunkSentences], dim: int) -> SentenceVectors:
        ids = sorted(by_chunk)
        if not ids:
            return cls(np.zeros(0, np.int64), np.zeros((0, 2), np.int32), np.zeros((0, dim), np.float16))
        parts = [by_chunk[i] for i in ids]
        return cls(
            np.repeat(np.asarray(ids, dtype=np.int64), [len(p.spans) for p in parts]),
            np.concatenate([p.spans for p in parts]),
            np.concatenate([p.vectors for p in parts]),
        )

    def _rows(self, chunk_id: int) -> slice:
        lo = int(np.searchsorted(self.chunk_ids, chunk_id, side="left"))
        hi = int(np.searchsorted(self.chunk_ids, chunk_id, side="right"))
        return slice(lo, hi)

    def of_chunk(self, chunk_id: int) -> ChunkSentences:
        rows = self._rows(chunk_id)
        return ChunkSentences(self.spans[rows], self.vectors[rows])

    def by_chunk(self) -> dict[int, ChunkSentences]:
        """Every chunk's rows (for a version builder to edit)."""
        bounds = np.flatnonzero(np.diff(self.chunk_ids)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(self.chunk_ids)]
        return {
            int(self.chunk_ids[s]): ChunkSentences(self.spans[s:e], self.vectors[s:e])
            for s, e in zip(starts, ends)
            if e > s
        }

    def best_cosines(self, chunk_ids: Sequence[int], query: np.ndarray) -> np.ndarray:
        """Each chunk's best sentence cosine with the (unit) query; -inf for a chunk with none."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        first = np.searchsorted(self.chunk_ids, ids, side="left")
        counts = np.searchsorted(self.chunk_ids, ids, side="right") - first
        out = np.full(len(ids), -np.inf, dtype=np.float32)
        found = counts > 0
        if not found.any():
            return out
        first, counts = first[found], counts[found]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])  # each chunk's first row in ``rows``
        rows = np.repeat(first - starts, counts) + np.arange(counts.sum())
        cosines = self.vectors[rows].astype(np.float32) @ np.asarray(query, dtype=np.float32).reshape(-1)
        out[found] = np.maximum.reduceat(cosines, starts)
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir()
        for name, array in zip(_FILES, (self.chunk_ids, self.spans, self.vectors)):
            with open(folder / name, "wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())

    @classmethod
    def load(cls, folder: Path) -> SentenceVectors | None:
        """The stored vectors; None for a version written without them."""
        if not folder.is_dir():
            return None
        # Memory-mapped: a query reads a few hundred rows, so only the pages it touches are resident.
        arrays = [np.load(folder / name, mmap_mode="r", allow_pickle=False) for name in _FILES]
        return cls(*arrays)


def sentence_texts(text: str, spans: Iterable[Span] | None = None) -> list[str]:
    """The sentences of ``text`` that get a stored vector (``spans``: its ``split_sentences``)."""
    return [text[s:e] for s, e in (split_sentences(text) if spans is None else spans)]
