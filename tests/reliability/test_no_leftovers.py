"""Failure 10: a request that fails creates nothing on disk (no empty collection folders)."""

from __future__ import annotations

from pathlib import Path


def snapshot(index_dir: Path) -> set[str]:
    return {str(p.relative_to(index_dir)) for p in index_dir.rglob("*")}


def test_failed_requests_create_nothing(client):
    before = snapshot(client.index_dir)
    attempts = [
        client.delete("/v1/collections/ghost1/documents/x.txt"),
        client.delete("/v1/collections/ghost2"),
        client.get("/v1/collections/ghost3/documents"),
        # an upload whose only file cannot be ingested: a refusal, not a new collection
        client.post("/v1/collections/ghost4/documents", files=[("files", ("x.exe", b"MZ...", "application/octet-stream"))]),
        client.post("/v1/collections/ghost5/documents", files=[("files", ("empty.txt", b"", "text/plain"))]),
        client.post("/v1/collections/ghost6/documents", files=[("files", (".hidden", b"text", "text/plain"))]),
        client.delete("/v1/collections/default/documents/not-there.txt"),
    ]
    for response in attempts:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)
    assert snapshot(client.index_dir) == before
