"""RAGQA_READ_ONLY: a replica over a shared, read-only index answers reads and refuses writes
(fast tier: the fake LLM and embedder over the real store and routers)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.store import IndexStore
from tests.fakes import FakeChatLLM, fake_services, fake_settings, ingest_samples


@pytest.fixture
def index_dir(tmp_path):
    ingest_samples(tmp_path)
    return tmp_path


def make_client(index_dir, **overrides) -> TestClient:
    settings = fake_settings(index_dir, refusal_min_score=-1.0, min_relevance=0.0, **overrides)
    return TestClient(create_app(settings, fake_services(settings, FakeChatLLM())))


WRITES = [
    ("post", "/v1/collections/default/documents"),
    ("post", "/v1/collections/fresh/documents"),
    ("delete", "/v1/collections/default/documents/faq.txt"),
    ("delete", "/v1/collections/default"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_read_only_replica_refuses_every_write_and_leaves_the_index_as_it_was(index_dir, method, path):
    store = IndexStore(index_dir)
    version, docs = store.current_version("default"), set(store.read_manifest("default").documents)
    files = [("files", ("notes.md", b"# Notes\n\nThe kiwi bird cannot fly.", "text/markdown"))]
    with make_client(index_dir, read_only=True) as client:
        response = client.post(path, files=files) if method == "post" else client.delete(path)
    assert response.status_code == 403, response.text
    assert "read-only (RAGQA_READ_ONLY=true)" in response.json()["detail"]
    assert "ragqa ingest" in response.json()["detail"]
    assert store.list_collections() == ["default"]
    assert store.current_version("default") == version
    assert set(store.read_manifest("default").documents) == docs


def test_a_read_only_replica_refuses_before_reading_the_upload(index_dir):
    # Refused for what it is, not for its form: no files part at all is still the 403.
    with make_client(index_dir, read_only=True) as client:
        response = client.post("/v1/collections/default/documents")
    assert response.status_code == 403, response.text


def test_a_read_only_replica_serves_reads(index_dir):
    with make_client(index_dir, read_only=True) as client:
        assert [c["name"] for c in client.get("/v1/collections").json()["collections"]] == ["default"]
        docs = client.get("/v1/collections/default/documents").json()["documents"]
        assert "faq.txt" in [d["doc"] for d in docs]
        retrieved = client.post("/v1/retrieve", json={"question": "What is ragqa?"})
        assert retrieved.status_code == 200 and retrieved.json()["passages"]
        asked = client.post("/v1/ask", json={"question": "What is ragqa?"})
        assert asked.status_code == 200 and asked.json()["sources"]


def test_readyz_accepts_an_unwritable_folder_only_on_a_read_only_replica(index_dir, monkeypatch):
    # As a volume mounted :ro (tests run as root, for whom every folder is writable).
    import app.api.routes.health as health

    monkeypatch.setattr(health.os, "access", lambda path, mode: False)
    with make_client(index_dir, read_only=True) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    with make_client(index_dir) as client:
        writer = client.get("/readyz")
    assert writer.status_code == 503
    assert any("is not writable" in p for p in writer.json()["problems"])


def test_writes_stay_open_by_default(index_dir):
    with make_client(index_dir) as client:
        response = client.delete("/v1/collections/default/documents/faq.txt")
    assert response.status_code == 200 and response.json()["deleted"] == 1


def test_the_openapi_document_lists_the_refusal_on_the_writers_only(index_dir):
    with make_client(index_dir, read_only=True) as client:
        paths = client.get("/openapi.json").json()["paths"]
    writers = {
        (m, p)
        for m, p in (
            ("post", "/v1/collections/{name}/documents"),
            ("delete", "/v1/collections/{name}"),
            ("delete", "/v1/collections/{name}/documents/{doc}"),
        )
    }
    for method, path in writers:
        refusal = paths[path][method]["responses"]["403"]
        assert "RAGQA_READ_ONLY" in refusal["description"]
        assert refusal["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorMessage"
        }
    readers = [(m, p) for p, ops in paths.items() for m in ops if (m, p) not in writers]
    assert readers and not [(m, p) for m, p in readers if "403" in paths[p][m]["responses"]]
