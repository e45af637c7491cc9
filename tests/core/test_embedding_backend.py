"""RAGQA_EMBEDDING_BACKEND, RAGQA_COMPUTE_THREADS and the question-vector cache (fast: no model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core import embeddings
from app.core.config import DEFAULT_EMBEDDING_BACKEND, Settings
from app.core.embeddings import QUERY_CACHE_SIZE, EmbeddingModel, LazyEmbeddingModel
from app.core.onnx_encoder import OnnxExportError, exported_model


def test_defaults(monkeypatch):
    for key in ("RAGQA_EMBEDDING_BACKEND", "RAGQA_ONNX_CACHE_DIR", "RAGQA_COMPUTE_THREADS"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings(_env_file=None)
    assert settings.embedding_backend == DEFAULT_EMBEDDING_BACKEND
    assert settings.onnx_cache_dir == Path.home() / ".cache" / "ragqa" / "onnx"
    assert settings.compute_threads == 1


def test_backend_and_threads_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGQA_EMBEDDING_BACKEND", "onnx-int8")
    monkeypatch.setenv("RAGQA_ONNX_CACHE_DIR", "~/elsewhere")
    monkeypatch.setenv("RAGQA_COMPUTE_THREADS", "0")
    settings = Settings(_env_file=None)
    assert settings.embedding_backend == "onnx-int8"
    assert settings.onnx_cache_dir == Path.home() / "elsewhere"
    assert settings.compute_threads == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAGQA_EMBEDDING_BACKEND", "tensorrt"),
        ("RAGQA_EMBEDDING_BACKEND", "ONNX"),
        ("RAGQA_COMPUTE_THREADS", "-1"),
    ],
)
def test_invalid_values_are_rejected_naming_the_setting(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("RAGQA_").lower()):
        Settings(_env_file=None)


def test_the_service_and_ingest_load_the_configured_backend(monkeypatch, tmp_path):
    from app import wiring

    loaded = []
    monkeypatch.setattr(embeddings, "load_embedding_model", lambda *args: loaded.append(args) or "model")
    settings = Settings(_env_file=None, embedding_backend="onnx-int8", onnx_cache_dir=tmp_path)
    lazy = wiring.build_embedder(settings, lazy=True)
    assert isinstance(lazy, LazyEmbeddingModel)
    assert (lazy.backend, lazy.onnx_cache_dir) == ("onnx-int8", tmp_path)
    assert wiring.build_embedder(settings) == "model"
    assert loaded == [(settings.embedding_model, settings.embedding_batch_size, "onnx-int8", tmp_path)]


def test_export_needs_a_local_folder_and_an_onnx_backend(tmp_path):
    with pytest.raises(OnnxExportError, match="not a local model folder"):
        exported_model(tmp_path / "sentence-transformers/some-hub-model", "onnx", tmp_path / "cache")
    with pytest.raises(ValueError, match="not an ONNX backend"):
        exported_model(tmp_path, "torch", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing written


class CountingEmbeddings:
    """A LangChain-shaped embeddings object that counts its calls."""

    def __init__(self):
        self.queries: list[str] = []

    def embed_query(self, text):
        self.queries.append(text)
        return [float(len(text)), 1.0, 0.0]

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]


def test_a_question_is_embedded_once_while_it_is_among_the_recent_ones():
    inner = CountingEmbeddings()
    model = EmbeddingModel("m", inner, 3)  # type: ignore[arg-type]
    first = model.embed_query("What is ragqa?")
    first[0] = -1.0  # a caller writing into its vector changes nobody else's
    again = model.embed_query("What is ragqa?")
    assert inner.queries == ["What is ragqa?"]
    assert again[0] == len("What is ragqa?")
    for i in range(QUERY_CACHE_SIZE):
        model.embed_query(f"question {i}")
    model.embed_query("What is ragqa?")  # pushed out by the others: embedded again
    assert inner.queries.count("What is ragqa?") == 2
    assert len(model._queries) == QUERY_CACHE_SIZE


def test_documents_are_not_cached():
    inner = CountingEmbeddings()
    model = EmbeddingModel("m", inner, 3)  # type: ignore[arg-type]
    model.embed_documents(["a text", "a text"])
    model.embed_documents(["a text"])
    assert inner.queries == ["a text"] * 3


def test_compute_threads_limit_faiss():
    import faiss

    from app.core.vector_index import set_search_threads

    before = faiss.omp_get_max_threads()
    try:
        set_search_threads(1)
        assert faiss.omp_get_max_threads() == 1
    finally:
        set_search_threads(before)


def test_a_model_that_is_not_a_local_folder_runs_on_torch(monkeypatch, tmp_path):
    import sys
    import types

    made = []

    class FakeHuggingFaceEmbeddings:
        def __init__(self, model_name, **kwargs):
            made.append(model_name)
            self._client = types.SimpleNamespace(get_embedding_dimension=lambda: 5)

    monkeypatch.setitem(
        sys.modules,
        "langchain_huggingface",
        types.SimpleNamespace(HuggingFaceEmbeddings=FakeHuggingFaceEmbeddings),
    )
    model = embeddings._load_embedding_model("someone/hub-only-model", 8, "onnx", tmp_path)
    assert (model.backend, model.dim, made) == ("torch", 5, ["someone/hub-only-model"])
    assert not list(tmp_path.iterdir())  # nothing exported
