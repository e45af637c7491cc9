"""Retrieval over a stored collection: dense, BM25 or both fused by their scores and hedged, then
optional MMR.

Whatever ranks the passages, ``Passage.score`` is the cosine similarity of the passage to the
question and ``Passage.relevance`` the higher of it and its best sentence's, so the thresholds
mean the same in every mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from app.core.config import Settings
from app.core.embeddings import (
    MULTILINGUAL_MIN_HANGUL_SHARE,
    Embedder,
    EmbedderRegistry,
    EmbeddingModelUnavailable,
    covers,
    profile_for,
)
from app.core.lexical import LexicalIndexMissing, hangul_share, is_korean
from app.core.sentence_vectors import ChunkSentences, SentenceVectors
from app.core.store import CollectionCache, CollectionIndex


class EmbeddingModelMismatch(Exception):
    """The collection's embedding model cannot embed the question here (not loadable, or its
    vectors do not have the collection's dimension)."""


# Chunks read to tell a collection's language when its manifest has no letter counts
# (a collection written before they were recorded).
LANGUAGE_SAMPLE_CHUNKS = 2000


def collection_language(index: CollectionIndex) -> str:
    """ "ko" when the collection's letters are mostly Hangul (the rule that picks its model), else "en"."""
    counts = [(d.hangul_letters, d.letters) for d in index.manifest.documents.values()]
    if counts and all(h is not None and n is not None for h, n in counts):
        letters = sum(n for _, n in counts)  # type: ignore[misc]
        share = sum(h for h, _ in counts) / letters if letters else 0.0  # type: ignore[misc]
    else:
        sample = [c.text for _, c in zip(range(LANGUAGE_SAMPLE_CHUNKS), index.chunks.values())]
        share = hangul_share("\n".join(sample))
    return "ko" if share >= MULTILINGUAL_MIN_HANGUL_SHARE else "en"


def effective_dense_weight(weight: float | None, model: str, question: str, collection_lang: str) -> float:
    """The dense list's share of the fusion: ``weight``, or the model's own where it is None; none
    when the collection's embedding model does not cover the question's language or the
    collection's (an English-only model on Korean text gives a near-random list that would pull
    hybrid below BM25 alone)."""
    question_lang = "ko" if is_korean(question) else "en"
    if covers(model, question_lang) and covers(model, collection_lang):
        return profile_for(model).hybrid_dense_weight if weight is None else weight
    return 0.0


class RetrievalMode(str, Enum):
    dense = "dense"
    bm25 = "bm25"
    hybrid = "hybrid"


@dataclass(frozen=True, slots=True)
class RetrievalOptions:
    mode: RetrievalMode = RetrievalMode.hybrid
    # The dense scores' weight in the fusion (BM25's: the rest); None: the collection's embedding
    # model's (``ModelProfile.hybrid_dense_weight``).
    dense_weight: float | None = None
    # 0 = rank by relevance only; higher values trade relevance for novelty (MMR's λ = 1 - diversity).
    diversity: float = 0.0
    # How many candidates each ranking contributes before fusion and MMR (at least top_k).
    candidates: int = 30
    # Rank dense candidates by max(chunk cosine, best sentence cosine) where the collection stores
    # sentence vectors (app/core/sentence_vectors.py); False: by the chunk's cosine alone.
    sentence_scoring: bool = True

    def but(self, mode: RetrievalMode | None = None, diversity: float | None = None) -> RetrievalOptions:
        """These options with a request's overrides (None keeps the value here)."""
        changes = {"mode": mode, "diversity": diversity}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalOptions:
        return cls(
            mode=RetrievalMode(settings.retrieval_mode),
            dense_weight=settings.hybrid_dense_weight,
            diversity=settings.retrieval_diversity,
            candidates=settings.retrieval_candidates,
        )


@dataclass(frozen=True, slots=True)
class Passage:
    id: int
    doc: str
    text: str
    score: float  # cosine similarity to the question
    rank: int  # 1-based, in retrieval order
    page: int | None = None  # for PDFs: the page the passage starts on
    title: str | None = None  # the document's title (not part of text)
    section: str | None = None  # the heading the passage is under (not part of text)
    # The chunk's stored sentence vectors, for the evidence stage; None where the collection has
    # none, or the text is no longer the chunk's (packing cut it).
    sentences: ChunkSentences | None = field(default=None, compare=False, repr=False)
    # Its best sentence's cosine to the question; None where not known (no sentence vectors).
    sentence_score: float | None = None

    @property
    def relevance(self) -> float:
        """What the refusal and evidence thresholds compare: the chunk's cosine or its best
        sentence's, whichever is higher. The model averages a long chunk, which drowns the one
        sentence that answers (a Korean chunk most of all)."""
        return self.score if self.sentence_score is None else max(self.score, self.sentence_score)


def convex_combination(
    dense: list[tuple[int, float]], lexical: list[tuple[int, float]], dense_weight: float
) -> list[tuple[int, float]]:
    """Fuse two scored candidate lists: w·dense + (1 − w)·BM25, each list's scores scaled to 0..1
    (min-max over that list); best first, ties in the order first seen (the dense list's first).

    A chunk missing from one list gets 0 from it. Scores, not ranks, so a passage far ahead of the
    rest keeps its lead, where reciprocal rank fusion credits rank 1 alike whether it wins by a
    hair or by a mile (Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval", 2023).
    """

    def scaled(ranking: list[tuple[int, float]]) -> dict[int, float]:
        if not ranking:
            return {}
        values = np.array([score for _, score in ranking], dtype=np.float64)
        spread = values.max() - values.min()
        unit = (values - values.min()) / spread if spread > 0 else np.ones(len(values))
        return {cid: float(u) for (cid, _), u in zip(ranking, unit)}

    dense_unit, lexical_unit = scaled(dense), scaled(lexical)
    ids = dict.fromkeys([cid for cid, _ in dense] + [cid for cid, _ in lexical])
    fused = [
        (cid, dense_weight * dense_unit.get(cid, 0.0) + (1.0 - dense_weight) * lexical_unit.get(cid, 0.0))
        for cid in ids
    ]
    return sorted(fused, key=lambda kv: -kv[1])


# A third and later passage of one document in the ranking needs this much more fused score per
# passage of it already placed (the fused scale is 0..1): five passages of one paper stake the
# answer on that paper being the right one. 0.05–0.15 retrieve alike on all five sets; 0.05 costs
# the answers least (docs/retrieval.md, "Hedged fusion").
REPEATED_DOCUMENT_PENALTY = 0.05
FREE_PASSAGES_PER_DOCUMENT = 2
# Each ranking's first two candidates stay within the first five places, whatever the other says.
LIST_LEADERS = 2
LEADERS_WITHIN = 5


def hedged(
    fused: list[tuple[int, float]],
    document: Callable[[int], str],
    rankings: list[list[tuple[int, float]]],
    depth: int,
) -> list[tuple[int, float]]:
    """``fused`` reordered so that no one document and no one ranking decides the first places.

    The first ``depth`` places go greedily to the best fused score less ``REPEATED_DOCUMENT_PENALTY``
    per passage of the same document already placed beyond ``FREE_PASSAGES_PER_DOCUMENT``. Then the
    first ``LIST_LEADERS`` candidates of each of ``rankings`` (dense, BM25) move into the first
    ``LEADERS_WITHIN`` places: min-max scaling lets one list's spread drown the other's clear first
    choice (a chunk first by BM25 and 52nd by cosine). Scores are kept; only the order changes.
    """
    doc_of = {cid: document(cid) for cid, _ in fused}  # looked up once, not per place
    rest = list(fused)
    order: list[tuple[int, float]] = []
    placed: dict[str, int] = {}

    def discounted(i: int) -> float:
        cid, score = rest[i]
        repeats = placed.get(doc_of[cid], 0) + 1 - FREE_PASSAGES_PER_DOCUMENT
        return score - REPEATED_DOCUMENT_PENALTY * max(0, repeats)

    while rest and len(order) < depth:
        cid, score = rest.pop(max(range(len(rest)), key=discounted))  # the first of equals
        order.append((cid, score))
        placed[doc_of[cid]] = placed.get(doc_of[cid], 0) + 1
    order += rest

    leaders = [
        ranking[place][0]
        for place in range(LIST_LEADERS)
        for ranking in rankings
        if place < len(ranking) and ranking[place][0] in doc_of  # a leader the fused list lacks: none
    ][:LEADERS_WITHIN]
    first = set(leaders)
    for cid, _ in order:
        if len(first) >= LEADERS_WITHIN:
            break
        first.add(cid)
    return [item for item in order if item[0] in first] + [item for item in order if item[0] not in first]


def maximal_marginal_relevance(
    relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float
) -> list[int]:
    """Indices of ``k`` candidates picked greedily by λ·rel - (1-λ)·max sim to those picked.

    ``relevance`` is scaled to [0, 1] first, so λ = 1 - diversity means the same whatever the
    first stage's score scale. ``vectors`` are normalised, so their dot product is cosine.
    """
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    lam = 1.0 - diversity
    rel = np.asarray(relevance, dtype=np.float64)
    spread = rel.max() - rel.min()
    rel = (rel - rel.min()) / spread if spread > 0 else np.ones(n)
    sims = vectors @ vectors.T
    picked = [int(np.argmax(rel))]
    max_sim = sims[picked[0]].astype(np.float64)
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    while len(picked) < min(k, n):
        mmr = lam * rel - (1.0 - lam) * max_sim
        mmr[~available] = -np.inf
        best = int(np.argmax(mmr))
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return picked


def by_dense_score(
    index: CollectionIndex, sentences: SentenceVectors | None, query: np.ndarray, ids: list[int]
) -> list[tuple[int, float]]:
    """``ids`` ranked by max(chunk cosine, best sentence cosine), or by chunk cosine alone where
    there are no sentence vectors; best first (ties keep their order)."""
    if not ids:
        return []
    score = index.vectors_for(ids) @ query
    if sentences is not None:
        score = np.maximum(score, sentences.best_cosines(ids, query))
    order = np.argsort(-score, kind="stable")
    return [(ids[i], float(score[i])) for i in order]


class Retriever:
    """Each collection is searched with the embedding model its manifest names: ``embedder``
    alone (a collection of another model is an error), or a registry that loads the others."""

    def __init__(
        self,
        collections: CollectionCache,
        embedder: Embedder | EmbedderRegistry,
        defaults: RetrievalOptions | None = None,
    ):
        self.collections = collections
        self.embedders = embedder if isinstance(embedder, EmbedderRegistry) else EmbedderRegistry(embedder)
        self.embedder = self.embedders.default
        self.defaults = defaults or RetrievalOptions()
        self._languages: dict[tuple[str, str], str] = {}  # (collection, version) -> language

    def model_of(self, collection: str) -> str:
        """The embedding model the collection was built with (its manifest's)."""
        return self.collections.get(collection).manifest.embedding.model

    def embedder_for(self, collection: str) -> Embedder:
        index = self.collections.get(collection)
        return self._embedder(index, collection)

    def language_of(self, index: CollectionIndex) -> str:
        key = (index.manifest.collection, index.manifest.version)
        if key not in self._languages:
            if len(self._languages) > 256:
                self._languages.clear()
            self._languages[key] = collection_language(index)
        return self._languages[key]

    def options(self, mode: RetrievalMode | None = None, diversity: float | None = None) -> RetrievalOptions:
        """The defaults with a request's overrides (None keeps the default)."""
        return self.defaults.but(mode, diversity)

    def run(
        self,
        question: str,
        collection: str,
        top_k: int,
        options: RetrievalOptions | None = None,
    ) -> list[Passage]:
        """Top ``top_k`` chunks for the question. CPU-bound: call it from a worker thread."""
        options = options or self.defaults
        index = self.collections.get(collection)
        embedder = self._embedder(index, collection)
        query = embedder.embed_query(question)
        pool = max(top_k, options.candidates)
        # None: the dense candidates keep their chunk cosines' order.
        sentences = index.sentences if options.sentence_scoring else None

        if options.mode is RetrievalMode.dense:
            ranked = [(h.chunk.id, h.score) for h in index.search(query, pool)]
            if sentences is not None:
                ranked = by_dense_score(index, sentences, query, [cid for cid, _ in ranked])
        else:
            lexical = self._lexical(index, collection).search(question, pool)
            if options.mode is RetrievalMode.bm25:
                ranked = lexical
            else:
                weight = effective_dense_weight(
                    options.dense_weight, embedder.model_id, question, self.language_of(index)
                )
                dense: list[tuple[int, float]] = []
                if weight > 0:
                    # BM25's candidates get a dense score too: a chunk found by its words may
                    # hold the one sentence that means what the question asks.
                    found = [h.chunk.id for h in index.search(query, pool)]
                    union = list(dict.fromkeys(found + [cid for cid, _ in lexical]))
                    dense = by_dense_score(index, sentences, query, union)
                ranked = convex_combination(dense, lexical, weight)
                if dense:
                    ranked = hedged(ranked, lambda cid: index.chunks[cid].doc, [dense, lexical], top_k)
                ranked = ranked[:pool]
        if not ranked:
            return []

        ids = [cid for cid, _ in ranked]
        vectors = index.vectors_for(ids)
        if options.diversity > 0:
            order = maximal_marginal_relevance(
                np.array([s for _, s in ranked]), vectors, top_k, options.diversity
            )
        else:
            order = list(range(min(top_k, len(ids))))
        cosine = vectors @ query
        chunks = [index.chunks[ids[i]] for i in order]
        # The stored sentences go to the evidence stage, however the passages were ranked.
        stored = index.sentences
        best = (
            stored.best_cosines([c.id for c in chunks], query)
            if stored is not None
            else np.full(len(chunks), -np.inf)
        )
        return [
            Passage(
                c.id, c.doc, c.text, float(cosine[i]), rank, c.page, c.title, c.section,
                stored.of_chunk(c.id) if stored is not None else None,
                float(b) if np.isfinite(b) else None,
            )
            for rank, (i, c, b) in enumerate(zip(order, chunks, best), start=1)
        ]

    def _embedder(self, index: CollectionIndex, collection: str) -> Embedder:
        built_with = index.manifest.embedding
        try:
            embedder = self.embedders.get(built_with.model)
        except EmbeddingModelUnavailable as exc:
            raise EmbeddingModelMismatch(
                f"collection {collection!r} was embedded with {built_with.model!r}, but the service "
                f"embeds queries with {self.embedder.model_id!r} and cannot load that model ({exc}); "
                "re-ingest the collection"
            ) from exc
        dim = getattr(embedder, "dim", None)  # a query-only wrapper (the benches) may not say
        if dim is not None and dim != built_with.dim:
            raise EmbeddingModelMismatch(
                f"collection {collection!r} has {built_with.dim}-dim vectors of {built_with.model!r}, "
                f"but that model gives {dim} here; re-ingest the collection"
            )
        return embedder

    @staticmethod
    def _lexical(index: CollectionIndex, collection: str):
        if index.lexical is None:
            raise LexicalIndexMissing(
                f"collection {collection!r} was written before ragqa stored a BM25 index; "
                "use retrieval 'dense', or delete and re-ingest the collection"
            )
        return index.lexical
