"""The objects one service process shares between requests, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.core.embeddings import Embedder, load_embedding_model
from app.core.store import CollectionCache, IndexStore
from app.llm.client import LLMClient
from app.llm.protocol import ChatLLM
from app.rag.grounding import Grounder
from app.rag.packing import ContextPacker
from app.rag.pipeline import AskPipeline
from app.rag.retrieval import RetrievalOptions, Retriever
from app.rag.shots import ExemplarSelector
from ingest.documents import DocumentService
from ingest.run import IngestJob
from ingest.splitting import TextSplitter


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
        cls, settings: Settings, *, llm: ChatLLM | None = None, embedder: Embedder | None = None
    ) -> Services:
        """The real LLM client and embedding model unless given (the tests pass fakes)."""
        if llm is None and settings.llm_base_url is None:
            raise ValueError(
                "RAGQA_LLM_BASE_URL is unset: start the service with `ragqa serve`, "
                "which starts the embedded LLM, or point it at an OpenAI-compatible server"
            )
        store = IndexStore(settings.index_dir)
        collections = CollectionCache(store)
        if embedder is None:
            embedder = load_embedding_model(settings.embedding_model, settings.embedding_batch_size)
        llm = llm or LLMClient(
            str(settings.llm_base_url),
            settings.llm_model,
            api_key=settings.llm_api_key,
            timeout_s=settings.llm_timeout_s,
            connect_timeout_s=settings.llm_connect_timeout_s,
        )
        pipeline = AskPipeline(
            Retriever(collections, embedder, RetrievalOptions.from_settings(settings)),
            ContextPacker(llm, settings.llm_context_window),
            llm,
            settings.min_relevance,
            # Embeds the exemplar bank once, here at start-up, when selection is by similarity.
            ExemplarSelector(settings.exemplar_selection, getattr(embedder, "embeddings", None)),
            settings.refusal_min_score,
            Grounder.from_settings(settings, embedder),
        )
        # Uploads reuse the service's embedding model: it is loaded once per process.
        job = IngestJob(
            store,
            embedder,
            TextSplitter(settings.chunk_size, settings.chunk_overlap),
            max_file_bytes=settings.ingest_max_file_bytes,
        )
        documents = DocumentService(job, settings.upload_max_bytes, settings.upload_max_files)
        return cls(settings, store, collections, embedder, llm, pipeline, documents)

    async def aclose(self) -> None:
        await self.llm.aclose()
