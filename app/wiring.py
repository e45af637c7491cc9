"""The composition root: every object ragqa runs with is built here, from the settings.

``Services.build`` (the API), the ``ragqa`` commands (ingest, serve, eval, map) and the tests
call these functions, so the ingest job, the retriever, the pipeline and the LLM's lifecycle
are made one way wherever they are used. Heavy imports stay inside the functions: a no-op
``ragqa ingest`` must not load LangChain or the LLM client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.config import Settings

if TYPE_CHECKING:
    from app.api.services import Services
    from app.core.embeddings import Embedder, EmbedderRegistry
    from app.core.store import CollectionCache, IndexStore
    from app.llm.protocol import ChatLLM
    from app.rag.pipeline import AskPipeline
    from app.rag.retrieval import Retriever
    from ingest.run import DocumentPreparer, IngestJob

# Where a run that never calls the LLM (eval --retrieval-only) says the LLM would be.
UNUSED_LLM_URL = "http://127.0.0.1:9/v1"


def build_embedder(settings: Settings, *, lazy: bool = False) -> Embedder:
    """The embedding model, loaded once per process; ``lazy``: on first use (ingest)."""
    from app.core.embeddings import LazyEmbeddingModel, load_embedding_model

    model, batch, backend = (
        settings.embedding_model,
        settings.embedding_batch_size,
        settings.embedding_backend,
    )
    if lazy:
        return LazyEmbeddingModel(model, batch, backend, settings.onnx_cache_dir)
    return load_embedding_model(model, batch, backend, settings.onnx_cache_dir)


def build_embedders(settings: Settings, default: Embedder, *, lazy: bool = False) -> EmbedderRegistry:
    """``default`` and the other models that collections name, loaded when first needed
    (``lazy``: when first embedding), at most two held at once."""
    from app.core.embeddings import EmbedderRegistry

    return EmbedderRegistry.loading(
        default,
        settings.embedding_batch_size,
        lazy=lazy,
        backend=settings.embedding_backend,
        onnx_cache_dir=settings.onnx_cache_dir,
    )


def limit_compute_threads(settings: Settings) -> None:
    """A service process: one embedding or FAISS search uses RAGQA_COMPUTE_THREADS threads
    (requests run side by side in worker threads already)."""
    if settings.compute_threads:
        from app.core.embeddings import set_compute_threads
        from app.core.vector_index import set_search_threads

        set_compute_threads(settings.compute_threads)
        set_search_threads(settings.compute_threads)


def build_store(settings: Settings) -> IndexStore:
    """The index folder, writing each version with the FAISS index type RAGQA_INDEX_TYPE asks for."""
    from app.core.store import IndexStore

    return IndexStore(settings.index_dir, settings.vector_index_policy())


def build_ingest_job(
    settings: Settings,
    store: IndexStore,
    embedder: Embedder,
    embedders: EmbedderRegistry | None = None,
    *,
    prepare: DocumentPreparer | None = None,
) -> IngestJob:
    """Unless RAGQA_EMBEDDING_MODEL is set, a new collection's model follows its text
    (mostly Hangul: the multilingual model) and each collection keeps the model it has.
    ``prepare``: where a folder's changed documents are loaded, split and embedded (None: here;
    ``ingest.ray_runner.ray_preparer``: on Ray)."""
    from ingest.run import IngestJob, prepare_locally
    from ingest.splitting import TextSplitter

    return IngestJob(
        store,
        embedder,
        TextSplitter(settings.chunk_size, settings.chunk_overlap, settings.chunk_header_rule),
        max_file_bytes=settings.ingest_max_file_bytes,
        embedders=embedders or build_embedders(settings, embedder, lazy=True),
        choose_model=not settings.embedding_model_explicit,
        prepare=prepare or prepare_locally,
        sentence_vectors=settings.sentence_vectors,
    )


def build_retriever(
    settings: Settings, collections: CollectionCache, embedder: Embedder | EmbedderRegistry
) -> Retriever:
    """Retrieval with the service's defaults (RAGQA_RETRIEVAL_MODE and the rest); each
    collection is searched with its own embedding model."""
    from app.core.embeddings import EmbedderRegistry
    from app.rag.retrieval import RetrievalOptions, Retriever

    if not isinstance(embedder, EmbedderRegistry):
        embedder = build_embedders(settings, embedder)
    return Retriever(collections, embedder, RetrievalOptions.from_settings(settings))


def build_llm_client(settings: Settings) -> ChatLLM:
    from app.llm.client import LLMClient

    if settings.llm_base_url is None:
        raise ValueError(
            "RAGQA_LLM_BASE_URL is unset: start the service with `ragqa serve`, "
            "which starts the embedded LLM, or point it at an OpenAI-compatible server"
        )
    return LLMClient(
        str(settings.llm_base_url),
        settings.llm_model,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
        connect_timeout_s=settings.llm_connect_timeout_s,
    )


def build_pipeline(
    settings: Settings, collections: CollectionCache, embedder: Embedder | EmbedderRegistry, llm: ChatLLM
) -> AskPipeline:
    import threading

    from app.core.embeddings import EmbedderRegistry
    from app.rag.grounding import Grounder
    from app.rag.packing import ContextPacker
    from app.rag.pipeline import AskPipeline
    from app.rag.shots import ExemplarSelection, ExemplarSelector

    embedders = embedder if isinstance(embedder, EmbedderRegistry) else build_embedders(settings, embedder)
    embedder = embedders.default
    grounders: dict[str, Grounder] = {}
    lock = threading.Lock()

    def grounder_for(model: str) -> Grounder:
        """One grounder per embedding model: its sentence vectors and its thresholds."""
        with lock:
            if model not in grounders:
                if len(grounders) >= 4:
                    grounders.clear()
                grounders[model] = Grounder.from_settings(settings, embedders.get(model))
            return grounders[model]

    return AskPipeline(
        build_retriever(settings, collections, embedders),
        ContextPacker(llm, settings.llm_context_window),
        llm,
        settings.min_relevance,
        # Embeds the exemplar bank once, here at start-up, when selection is by similarity.
        ExemplarSelector(
            ExemplarSelection(settings.exemplar_selection), getattr(embedder, "embeddings", None)
        ),
        settings.refusal_min_score,
        Grounder.from_settings(settings, embedder),
        grounders=grounder_for,
    )


def build_services(
    settings: Settings,
    *,
    llm: ChatLLM | None = None,
    embedder: Embedder | None = None,
    embedders: EmbedderRegistry | None = None,
) -> Services:
    """What one service process shares between requests; the real models unless given
    (``embedders``: the models that collections name, ``embedder`` its default)."""
    from app.api.services import Services
    from app.core.store import CollectionCache
    from ingest.documents import DocumentService

    llm = llm or build_llm_client(settings)
    limit_compute_threads(settings)
    if embedders is not None:
        embedder = embedders.default
    embedder = embedder or build_embedder(settings)
    embedders = embedders or build_embedders(settings, embedder)
    store = build_store(settings)
    collections = CollectionCache(store)
    # Uploads and queries share the service's models: each is loaded once per process.
    job = build_ingest_job(settings, store, embedder, embedders)
    documents = DocumentService(job, settings.upload_max_bytes, settings.upload_max_files)
    ask = build_pipeline(settings, collections, embedders, llm)
    return Services(settings, store, collections, embedder, llm, ask, documents)


@contextmanager
def running_llm(
    settings: Settings, *, needed: bool = True, status_file: Path | None = None
) -> Iterator[Settings]:
    """The settings with an LLM to talk to: RAGQA_LLM_BASE_URL as given, or the embedded
    llama.cpp server started now and stopped on exit. ``ragqa serve`` and ``ragqa eval`` both
    start it here. ``needed`` False: nothing will call the LLM, so none is started.
    ``status_file``: where the embedded server's supervisor publishes its status (the workers
    of `ragqa serve --workers N` read it)."""
    if not needed:
        yield settings.model_copy(update={"llm_base_url": settings.llm_base_url or UNUSED_LLM_URL})
        return
    from app.llm.embedded import llm_for

    with llm_for(settings, status_file=status_file) as ready:
        yield ready
