"""The fast tier's app for the reliability suite: the real FastAPI app and index format, with a
deterministic fake embedding model (no model download, no torch) and no LLM listening."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.embeddings import EmbeddingModel
from app.core.store import IndexStore
from app.llm.embedded import free_loopback_port
from tests.fakes import UnitFakeEmbedding

REPO = Path(__file__).resolve().parents[2]
DIM = 16
FAKE_MODEL = "fake-model"


def fake_embedder() -> EmbeddingModel:
    return EmbeddingModel(FAKE_MODEL, UnitFakeEmbedding(size=DIM), DIM)


def ingest_samples(index_dir: Path, collection: str = "default") -> None:
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter

    IngestJob(IndexStore(index_dir), fake_embedder(), TextSplitter(1000, 150)).run(
        REPO / "samples" / "ragqa-docs", collection
    )


def dead_llm_url() -> str:
    return f"http://127.0.0.1:{free_loopback_port()}/v1"  # nothing listens there


@pytest.fixture(scope="session")
def fake_sample_index(tmp_path_factory) -> Path:
    index_dir = tmp_path_factory.mktemp("fake-indexes")
    ingest_samples(index_dir)
    return index_dir


@pytest.fixture
def make_client(tmp_path, monkeypatch, fake_sample_index):
    """Builds a TestClient over a fresh index folder holding the samples as `default`."""
    import app.wiring
    from app.api.main import create_app
    from app.core.config import Settings

    monkeypatch.setattr(app.wiring, "build_embedder", lambda *a, **k: fake_embedder())
    index_dir = tmp_path / "indexes"
    shutil.copytree(fake_sample_index, index_dir)
    clients = []

    def make(**overrides) -> TestClient:
        settings = Settings(
            _env_file=None,
            index_dir=index_dir,
            llm_base_url=overrides.pop("llm_base_url", dead_llm_url()),
            embedding_model=FAKE_MODEL,
            **overrides,
        )
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        client.index_dir = index_dir
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def sse(*chunks: dict) -> bytes:
    import json

    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def chunk(text: str = "", finish: str | None = None) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-llm",
        "choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}],
    }


def completion(text: str, finish: str = "stop") -> dict:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-llm",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }


def install_fake_llm(llm, handler) -> None:
    """Route an LLMClient's HTTP through ``handler(request) -> httpx.Response`` (no server)."""
    import httpx
    from openai import AsyncOpenAI

    def routed(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "fake-llm"}]})
        if "tokenize" in request.url.path:
            return httpx.Response(404)
        return handler(request)

    transport = httpx.MockTransport(routed)
    llm._openai = AsyncOpenAI(
        base_url=llm.base_url,
        api_key="EMPTY",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )
    llm._http = httpx.AsyncClient(transport=transport)
