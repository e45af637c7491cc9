"""Failure 7: one corrupt collection does not break listing for everyone."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.conftest import ingest_samples


def corrupt(index_dir: Path, collection: str) -> None:
    cdir = index_dir / collection
    version = (cdir / "CURRENT").read_text().strip()
    (cdir / version / "manifest.json").write_text("{ not json")


def test_a_corrupt_manifest_is_marked_and_the_rest_listed(client):
    ingest_samples(client.index_dir, "broken")
    corrupt(client.index_dir, "broken")
    response = client.get("/v1/collections")
    assert response.status_code == 200, response.text
    listed = {c["name"]: c for c in response.json()["collections"]}
    assert listed["default"]["status"] == "ok" and listed["default"]["documents"] > 0
    assert listed["broken"]["status"] == "broken" and listed["broken"]["problem"]
    assert str(client.index_dir) not in response.text

    models = client.get("/v1/models")
    assert models.status_code == 200, models.text
    assert [m["id"] for m in models.json()["data"]] == ["ragqa/default"]
