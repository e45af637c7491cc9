"""`retrieval` and `diversity` on the REST API: each mode answers, bad values get a 422."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.config import Settings
from app.llm.embedded import free_loopback_port

pytestmark = pytest.mark.slow  # loads the real embedding model


@pytest.fixture(scope="module")
def client(sample_index):
    settings = Settings(
        _env_file=None, index_dir=sample_index, llm_base_url=f"http://127.0.0.1:{free_loopback_port()}/v1"
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_returns_ranked_passages(client, mode):
    response = client.post(
        "/v1/retrieve", json={"question": "How do I ingest documents?", "retrieval": mode, "top_k": 3}
    )
    assert response.status_code == 200, response.text
    passages = response.json()["passages"]
    assert 1 <= len(passages) <= 3
    assert [p["rank"] for p in passages] == list(range(1, len(passages) + 1))
    assert all(-1.0 <= p["score"] <= 1.0 for p in passages)


def test_diversity_is_accepted(client):
    response = client.post(
        "/v1/retrieve", json={"question": "ingest", "retrieval": "hybrid", "diversity": 0.5, "top_k": 3}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body, mentions",
    [
        ({"question": "ok?", "retrieval": "fuzzy"}, "retrieval"),
        ({"question": "ok?", "diversity": 1.5}, "diversity"),
        ({"question": "ok?", "diversity": -0.1}, "diversity"),
    ],
)
def test_bad_retrieval_settings_get_422(client, body, mentions):
    for route in ("/v1/retrieve", "/v1/ask"):
        response = client.post(route, json=body)
        assert response.status_code == 422
        assert mentions in str(response.json()["detail"])
