"""The embedding map: a t-SNE PNG of the chunk embeddings, cached per index version."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.api.main import create_app
from app.core.config import Settings
from tests.conftest import RAGQA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def squad_dir(request) -> Path:
    """The session's SQuAD collection; RAGQA_TEST_SQUAD_INDEX reuses one ingested earlier
    (a developer shortcut: ingesting takes minutes on 2 cores)."""
    existing = os.environ.get("RAGQA_TEST_SQUAD_INDEX")
    return Path(existing) if existing else request.getfixturevalue("squad_index")


@pytest.fixture(scope="module")
def client(squad_dir):
    settings = Settings(
        _env_file=None, index_dir=squad_dir, llm_base_url="http://127.0.0.1:9/v1", map_max_points=200
    )
    with TestClient(create_app(settings)) as client:
        yield client


def image_of(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_map_png_is_drawn_and_cached(client):
    first = client.get("/v1/collections/squad/map.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.headers["x-map-cache"] == "miss"
    pixels = image_of(first.content)
    assert pixels.shape == (900, 1200, 3)
    # Not blank: many colours (one per document), and far from all white.
    distinct = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert distinct > 50
    assert (pixels.sum(axis=2) < 600).mean() > 0.01

    again = client.get("/v1/collections/squad/map.png")
    assert again.headers["x-map-cache"] == "hit" and again.content == first.content


def test_map_points_are_sampled_above_the_limit(client):
    body = client.get("/v1/collections/squad/map").json()
    assert body["sampled"] is True and len(body["points"]) == 200 < body["total_chunks"]
    assert body["cached"] is True  # the PNG above projected it already
    xy = np.array([[p["x"], p["y"]] for p in body["points"]])
    assert np.isfinite(xy).all() and xy.std(axis=0).min() > 1  # spread out, not collapsed
    assert len({p["doc"] for p in body["points"]}) > 20


def test_question_marks_the_retrieved_chunks(client):
    plain = image_of(client.get("/v1/collections/squad/map.png").content)
    response = client.get(
        "/v1/collections/squad/map.png", params={"question": "Which team won Super Bowl 50?", "top_k": 5}
    )
    assert response.status_code == 200 and response.headers["x-map-cache"] == "miss"
    marked = image_of(response.content)
    assert marked.shape == plain.shape and (marked != plain).any()


def test_unknown_collection_is_404_and_bad_name_422(client):
    assert client.get("/v1/collections/nope/map.png").status_code == 404
    assert client.get("/v1/collections/..%2Fetc/map.png").status_code in (404, 422)


def test_cli_map_writes_a_png(squad_dir, tmp_path):
    out = tmp_path / "squad-map.png"
    result = subprocess.run(
        [
            str(RAGQA),
            "map",
            "squad",
            "--out",
            str(out),
            "--index-dir",
            str(squad_dir),
            "--max-points",
            "150",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["points"] == 150 and summary["sampled"] is True
    assert Image.open(out).size == (1200, 900)
