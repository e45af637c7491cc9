"""Dense retrieval over a stored collection."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.embeddings import EmbeddingModel
from app.core.store import CollectionCache


class EmbeddingModelMismatch(Exception):
    """The collection was embedded with another model than the service's: its vectors don't compare."""


@dataclass(frozen=True, slots=True)
class Passage:
    id: int
    doc: str
    text: str
    score: float
    rank: int  # 1-based, in retrieval order
    page: int | None = None  # for PDFs: the page the passage starts on


class Retriever:
    def __init__(self, collections: CollectionCache, embedder: EmbeddingModel):
        self.collections = collections
        self.embedder = embedder

    def run(self, question: str, collection: str, top_k: int) -> list[Passage]:
        """Top ``top_k`` chunks by cosine similarity. CPU-bound: call it from a worker thread."""
        index = self.collections.get(collection)
        built_with = index.manifest.embedding.model
        if built_with != self.embedder.model_id:
            raise EmbeddingModelMismatch(
                f"collection {collection!r} was embedded with {built_with!r}, but the service "
                f"embeds queries with {self.embedder.model_id!r}; set RAGQA_EMBEDDING_MODEL="
                f"{built_with} or re-ingest the collection"
            )
        hits = index.search(self.embedder.embed_query(question), top_k)
        return [
            Passage(h.chunk.id, h.chunk.doc, h.chunk.text, h.score, rank, h.chunk.page)
            for rank, h in enumerate(hits, start=1)
        ]
