"""The objects one service process shares between requests, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.core.embeddings import Embedder, EmbedderRegistry
from app.core.store import CollectionCache, IndexStore
from app.llm.protocol import ChatLLM
from app.rag.pipeline import AskPipeline
from ingest.documents import DocumentService


@dataclass
class Services:
    settings: Settings
    store: IndexStore
    collections: CollectionCache
    embedder: Embedder
    llm: ChatLLM
    pipeline: AskPipeline
    documents: DocumentService

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        llm: ChatLLM | None = None,
        embedder: Embedder | None = None,
        embedders: EmbedderRegistry | None = None,
    ) -> Services:
        """The real LLM client and embedding models unless given (the tests pass fakes);
        built by the composition root, app/wiring.py."""
        from app.wiring import build_services

        return build_services(settings, llm=llm, embedder=embedder, embedders=embedders)

    async def aclose(self) -> None:
        await self.llm.aclose()
