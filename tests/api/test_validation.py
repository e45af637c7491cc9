"""Bad input gets a 4xx with a message, never a 500; an unreachable LLM is a clear 503."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.config import Settings
from app.llm.embedded import free_loopback_port

pytestmark = pytest.mark.slow  # loads the real embedding model


@pytest.fixture(scope="module")
def client(sample_index):
    dead_llm = f"http://127.0.0.1:{free_loopback_port()}/v1"  # nothing listens there
    settings = Settings(_env_file=None, index_dir=sample_index, llm_base_url=dead_llm)
    with TestClient(create_app(settings)) as client:
        yield client


def detail_text(response) -> str:
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else " ".join(str(e.get("msg")) + str(e.get("loc")) for e in detail)


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/retrieve"])
@pytest.mark.parametrize(
    "body, mentions",
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "question"),
        ({"question": "x" * 5000}, "question"),
        ({"question": "ok?", "top_k": 0}, "top_k"),
        ({"question": "ok?", "top_k": 51}, "top_k"),
        ({"question": "ok?", "collection": "../etc"}, "collection"),
        ({"question": "ok?", "unknown_field": 1}, "unknown_field"),
        ({}, "question"),
    ],
)
def test_invalid_requests_get_422_with_a_message(client, route, body, mentions):
    response = client.post(route, json=body)
    assert response.status_code == 422
    assert mentions in detail_text(response)


@pytest.mark.parametrize(
    "body, mentions",
    [
        ({"question": "ok?", "temperature": 3}, "temperature"),
        ({"question": "ok?", "temperature": -0.1}, "temperature"),
        ({"question": "ok?", "max_tokens": 0}, "max_tokens"),
        ({"question": "ok?", "max_tokens": 4096}, "max_tokens"),
        ({"question": "ok?", "prompt_mode": "ten_shot"}, "prompt_mode"),
        ({"question": "ok?", "adapter": ""}, "adapter"),
        ({"question": "ok?", "adapter": 7}, "adapter"),
    ],
)
def test_invalid_generation_settings_get_422(client, body, mentions):
    response = client.post("/v1/ask", json=body)
    assert response.status_code == 422
    assert mentions in detail_text(response)


@pytest.mark.parametrize(
    "body, mentions",
    [
        ({"question": "ok?", "strategy": "tree_of_thought"}, "strategy"),
        ({"question": "ok?", "mode": "open_book"}, "mode"),
        ({"question": "ok?", "mode": "closed_book", "top_k": 3}, "top_k"),
        ({"question": "ok?", "mode": "closed_book", "strategy": "cot"}, "strategy"),
        ({"question": "ok?", "mode": "closed_book", "compare": True}, "compare"),
        ({"question": "ok?", "prompt_mode": "one_shot", "shots": 3}, "shots"),
        ({"question": "ok?", "prompt_mode": "few_shot", "shots": 0}, "shots"),
        ({"question": "ok?", "prompt_mode": "few_shot", "shots": 99}, "shots"),
        ({"question": "ok?", "top_p": 0}, "top_p"),
        ({"question": "ok?", "top_p": 1.5}, "top_p"),
        ({"question": "ok?", "seed": -1}, "seed"),
        ({"question": "ok?", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"question": "ok?", "stop": [""]}, "stop"),
    ],
)
def test_bad_strategy_combinations_get_422(client, body, mentions):
    response = client.post("/v1/ask", json=body)
    assert response.status_code == 422
    assert mentions in detail_text(response)


def test_good_strategy_combinations_pass_validation(client):
    # They reach the (dead) LLM: validation let them through.
    for body in (
        {"question": "Does ragqa need a GPU?", "mode": "closed_book"},
        {"question": "Does ragqa need a GPU?", "prompt_mode": "few_shot", "shots": 6, "strategy": "cot"},
        {"question": "Does ragqa need a GPU?", "top_p": 0.9, "seed": 7, "stop": ["\n"], "compare": True},
    ):
        assert client.post("/v1/ask", json=body).status_code == 503, body


def test_malformed_json_gets_422(client):
    response = client.post(
        "/v1/ask", content=b'{"question": "unterminated', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in detail_text(response) or "json" in detail_text(response)


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/retrieve"])
def test_unknown_collection_is_404_listing_known_ones(client, route):
    response = client.post(route, json={"question": "What is ragqa?", "collection": "nope"})
    assert response.status_code == 404
    assert "nope" in response.json()["detail"] and "default" in response.json()["detail"]


def test_question_is_stripped_and_4000_chars_accepted(client):
    response = client.post("/v1/retrieve", json={"question": "  " + "a" * 3996 + "  ", "top_k": 2})
    assert response.status_code == 200
    assert len(response.json()["passages"]) == 2


def test_question_over_4000_chars_as_sent_is_422_even_if_whitespace(client):
    # The schema's maxLength is about the text as sent (the fuzz probe checks that).
    response = client.post("/v1/retrieve", json={"question": " " + "a" * 4000, "top_k": 2})
    assert response.status_code == 422
    assert "4,000" in detail_text(response)


def test_retrieve_returns_ranked_passages(client):
    for mode in ("hybrid", "dense"):
        body = {"question": "Does ragqa need a GPU?", "top_k": 3, "retrieval": mode}
        response = client.post("/v1/retrieve", json=body)
        assert response.status_code == 200
        passages = response.json()["passages"]
        assert [p["rank"] for p in passages] == [1, 2, 3]
        assert passages[0]["doc"] == "faq.txt"
    # Dense ranks by cosine; hybrid ranks by fused rank while `score` stays the cosine.
    scores = [p["score"] for p in passages]
    assert scores == sorted(scores, reverse=True)


def test_unreachable_llm_is_503_not_500(client):
    response = client.post("/v1/ask", json={"question": "Does ragqa need a GPU?", "mode": "rag"})
    assert response.status_code == 503
    assert "cannot reach the LLM" in response.json()["detail"]


def test_readyz_reports_the_unreachable_llm(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["llm"] == "unreachable" and body["collections"] == ["default"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_collections_are_listed(client):
    collections = client.get("/v1/collections").json()["collections"]
    assert [c["name"] for c in collections] == ["default"]
    assert collections[0]["documents"] == 5 and collections[0]["chunks"] >= 5
    assert collections[0]["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/ask", "/v1/retrieve", "/v1/collections", "/healthz", "/readyz"} <= set(paths)


def test_readyz_names_an_index_folder_it_cannot_write(client, sample_index, monkeypatch):
    # As in a container whose uid 10001 does not own the mounted folder (tests run as root).
    import app.api.routes.health as health

    monkeypatch.setattr(health.os, "access", lambda path, mode: False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert any(f"the index folder {sample_index} is not writable" in p for p in response.json()["problems"])
