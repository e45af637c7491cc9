"""Collections and documents over REST: upload, list, delete, size caps, sanitised names."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.config import Settings
from app.llm.embedded import free_loopback_port
from tests.ingest.docgen import make_pdf

pytestmark = pytest.mark.slow  # loads the real embedding model

MAX_BYTES = 4096


@pytest.fixture
def client(tmp_path):
    dead_llm = f"http://127.0.0.1:{free_loopback_port()}/v1"  # retrieval needs no LLM
    settings = Settings(
        _env_file=None,
        index_dir=tmp_path / "indexes",
        llm_base_url=dead_llm,
        upload_max_bytes=MAX_BYTES,
        upload_max_files=3,
        chunk_size=300,
        chunk_overlap=50,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def upload(client, collection, *files):
    return client.post(f"/v1/collections/{collection}/documents", files=[("files", f) for f in files])


def retrieved_docs(client, collection, question):
    response = client.post("/v1/retrieve", json={"question": question, "collection": collection, "top_k": 5})
    assert response.status_code == 200, response.text
    return [p["doc"] for p in response.json()["passages"]]


def test_upload_list_replace_and_delete_documents(client):
    pdf = make_pdf(["This cover page lists the authors and the date of the report. " * 6, "The lighthouse of Pharos stood in Alexandria."])
    response = upload(
        client,
        "notes",
        ("whales.txt", b"Blue whales are the largest animals ever known.", "text/plain"),
        ("pharos.pdf", pdf, "application/pdf"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["added"] == 2 and body["summary"]["embedded"] >= 2
    assert [f["doc"] for f in body["files"]] == ["whales.txt", "pharos.pdf"]

    listed = client.get("/v1/collections/notes/documents").json()
    assert [d["doc"] for d in listed["documents"]] == ["pharos.pdf", "whales.txt"]
    passages = client.post("/v1/retrieve", json={"question": "Where was the lighthouse?", "collection": "notes"})
    top = passages.json()["passages"][0]
    assert (top["doc"], top["page"]) == ("pharos.pdf", 2)

    # The same file again: unchanged, nothing embedded, no new version.
    again = upload(client, "notes", ("whales.txt", b"Blue whales are the largest animals ever known.", "text/plain"))
    assert again.json()["summary"]["unchanged"] == 1 and again.json()["summary"]["embedded"] == 0
    # New content under the same name replaces the old chunks.
    replaced = upload(client, "notes", ("whales.txt", b"Octopuses have three hearts.", "text/plain"))
    assert replaced.json()["summary"]["updated"] == 1
    texts = [
        p["text"]
        for p in client.post(
            "/v1/retrieve", json={"question": "largest animals", "collection": "notes", "top_k": 10}
        ).json()["passages"]
    ]
    assert not any("Blue whales" in t for t in texts)

    deleted = client.delete("/v1/collections/notes/documents/pharos.pdf")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 1
    assert "pharos.pdf" not in retrieved_docs(client, "notes", "Where was the lighthouse?")
    missing = client.delete("/v1/collections/notes/documents/pharos.pdf")
    assert missing.status_code == 404 and "no document 'pharos.pdf'" in missing.json()["detail"]


def test_uploaded_names_are_sanitised(client, tmp_path):
    response = upload(client, "safe", ("../../escape.txt", b"Text that tries to leave.", "text/plain"))
    assert response.status_code == 200, response.text
    assert response.json()["files"] == [{"filename": "../../escape.txt", "doc": "escape.txt"}]
    response = upload(client, "safe", ("/etc/passwd.md", b"Absolute path name.", "text/plain"))
    assert response.json()["files"][0]["doc"] == "passwd.md"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "indexes" / "escape.txt").exists()
    docs = [d["doc"] for d in client.get("/v1/collections/safe/documents").json()["documents"]]
    assert docs == ["escape.txt", "passwd.md"]
    for bad in ("..", ".hidden.txt", "sub/"):
        rejected = upload(client, "safe", (bad, b"x", "text/plain"))
        assert rejected.status_code == 422, bad
        assert "name" in rejected.json()["detail"]


def test_oversized_and_unusable_uploads_are_refused(client):
    too_big = upload(client, "caps", ("big.txt", b"a" * (MAX_BYTES + 1), "text/plain"))
    assert too_big.status_code == 413 and "upload limit of 4096 bytes" in too_big.json()["detail"]
    # Far over the whole-request limit: refused from Content-Length, before the body is parsed.
    huge = upload(client, "caps", ("huge.txt", b"a" * (4 * MAX_BYTES + 2 * 1024 * 1024), "text/plain"))
    assert huge.status_code == 413 and "larger than the limit" in huge.json()["detail"]
    too_many = upload(client, "caps", *[(f"f{i}.txt", b"text", "text/plain") for i in range(4)])
    assert too_many.status_code == 422 and "limit is 3" in too_many.json()["detail"]
    binary = upload(client, "caps", ("image.txt", b"\x89PNG\x00\x00", "text/plain"))
    assert binary.status_code == 422 and "binary content" in binary.json()["detail"]
    assert client.get("/v1/collections/caps/documents").status_code == 404  # nothing was created
    assert upload(client, "../etc", ("a.txt", b"text", "text/plain")).status_code in (404, 422)
    assert upload(client, "bad..name", ("a.txt", b"text", "text/plain")).status_code == 422
    assert client.post("/v1/collections/caps/documents").status_code == 422  # no files at all


def test_concurrent_uploads_to_one_collection_both_land(client):
    results = []

    def send(i):
        results.append(upload(client, "busy", (f"doc{i}.txt", f"Document {i} is about topic {i}.".encode(), "text/plain")))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 4
    listed = client.get("/v1/collections/busy/documents").json()["documents"]
    assert sorted(d["doc"] for d in listed) == [f"doc{i}.txt" for i in range(4)]


def test_delete_collection(client):
    upload(client, "temp", ("a.txt", b"Temporary text.", "text/plain"))
    assert "temp" in [c["name"] for c in client.get("/v1/collections").json()["collections"]]
    assert client.delete("/v1/collections/temp").json() == {"collection": "temp", "deleted": True}
    assert client.get("/v1/collections").json()["collections"] == []
    gone = client.post("/v1/retrieve", json={"question": "text", "collection": "temp"})
    assert gone.status_code == 404
    assert client.delete("/v1/collections/temp").status_code == 404
    assert client.get("/v1/collections/temp/documents").status_code == 404
