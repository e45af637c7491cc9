"""The ONNX backends on the bundled MiniLM: exported offline from its folder, cached, vectors
close to torch's, and ingest + ask working on them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app.core import onnx_encoder
from app.core.config import DEFAULT_EMBEDDING_MODEL
from app.core.embeddings import _load_embedding_model, resolve_model_location
from tests.conftest import SQUAD11, require_eval_data
from tests.fakes import FakeChatLLM, fake_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def offline(monkeypatch_module):
    """No hub: an attempt to reach it would fail the export."""
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch_module.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real passages and questions, English and Korean, short and past the 256-token limit."""
    require_eval_data()
    docs = sorted((SQUAD11 / "docs").iterdir())[:6]
    passages = [p.read_text("utf-8")[i : i + 900] for p in docs for i in (0, 900, 5000)]
    return [
        *passages,
        "What is ragqa?",
        "Which NFL team represented the AFC at Super Bowl 50?",
        "서울은 대한민국의 수도이며 가장 큰 도시이다.",
        "ragqa는 GPU가 필요한가요?",
        "word " * 400,
    ]


@pytest.fixture(scope="module")
def torch_vectors(texts):
    model = _load_embedding_model(DEFAULT_EMBEDDING_MODEL, 8, "torch")
    return model.embed_documents(texts), np.stack([model.embed_query(t) for t in texts[-5:]])


@pytest.fixture(scope="module")
def onnx_models(offline, cache_dir):
    return {
        b: _load_embedding_model(DEFAULT_EMBEDDING_MODEL, 8, b, cache_dir) for b in onnx_encoder.ONNX_BACKENDS
    }


def test_the_export_is_cached_beside_nothing_else_and_loaded_without_exporting_again(
    onnx_models, cache_dir, monkeypatch
):
    exports = sorted(p.name for p in cache_dir.iterdir() if p.is_dir())
    assert [e.rsplit("-", 1)[0] for e in exports] == ["model-onnx", "model-onnx-int8"]
    assert {p.name for p in (cache_dir / exports[0]).iterdir()} == {
        "model.onnx",
        "tokenizer.json",
        "export.json",
    }
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no staging folder left

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_encoder, "_export", no_export)
    again = _load_embedding_model(DEFAULT_EMBEDDING_MODEL, 8, "onnx", cache_dir)
    assert again.backend == "onnx" and again.dim == 384


def test_onnx_fp32_gives_torchs_vectors(onnx_models, texts, torch_vectors):
    documents, queries = torch_vectors
    model = onnx_models["onnx"]
    got = model.embed_documents(texts)
    assert got.shape == documents.shape == (len(texts), 384)
    assert np.abs(got - documents).max() < 1e-5
    assert np.abs(np.stack([model.embed_query(t) for t in texts[-5:]]) - queries).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_onnx_int8_vectors_stay_close_to_torchs(onnx_models, texts, torch_vectors):
    documents, _ = torch_vectors
    got = onnx_models["onnx-int8"].embed_documents(texts)
    cosines = (got * documents).sum(axis=1)
    assert cosines.min() >= 0.97 and cosines.mean() >= 0.99
    assert np.abs(got - documents).max() > 1e-4  # it is quantized: not the fp32 graph again


def test_a_new_model_version_gets_a_new_export(tmp_path, offline):
    import shutil

    folder = tmp_path / "minilm"
    shutil.copytree(resolve_model_location(DEFAULT_EMBEDDING_MODEL), folder)
    first = onnx_encoder.exported_model(folder, "onnx", tmp_path / "cache")
    (folder / "README.md").write_text("changed\n")
    second = onnx_encoder.exported_model(folder, "onnx", tmp_path / "cache")
    assert first != second and (second / "model.onnx").is_file()


@pytest.mark.parametrize("backend", onnx_encoder.ONNX_BACKENDS)
def test_ingest_and_ask_on_onnx(backend, onnx_models, tmp_path):
    from app.api.services import Services
    from app.rag.pipeline import AnswerMode, AskQuery
    from app.rag.prompts import PromptMode
    from app.wiring import build_ingest_job, build_store

    model = onnx_models[backend]
    settings = fake_settings(tmp_path, embedding_backend=backend).model_copy(
        update={"embedding_model": DEFAULT_EMBEDDING_MODEL}
    )
    docs = Path(__file__).resolve().parents[2] / "samples" / "ragqa-docs"
    summary = build_ingest_job(settings, build_store(settings), model).run(docs, "default")
    assert summary.added == len(list(docs.iterdir())) and summary.embedding_model == DEFAULT_EMBEDDING_MODEL
    services = Services.build(settings, llm=FakeChatLLM(), embedder=model)
    query = AskQuery("Does ragqa need a GPU?", "default", 5, PromptMode.one_shot, mode=AnswerMode.extractive)
    result = asyncio.run(services.pipeline.run(query))
    assert not result.refused and result.grounded
    assert result.sources[0].doc == "faq.txt" and "GPU" in result.answer
