"""Failures 1 and 2: non-finite numbers and lone surrogates are a 422 with a message, never a 500."""

from __future__ import annotations

import json

import pytest


def raw_post(client, path: str, body: str):
    # Python's json module writes NaN/Infinity and lone surrogates; send the exact bytes.
    return client.post(path, content=body.encode("utf-8"), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/retrieve", '{"question": "What is ragqa?", "top_k": 1e400}'),
        ("/v1/retrieve", '{"question": "What is ragqa?", "top_k": -1e400}'),
        ("/v1/retrieve", '{"question": "What is ragqa?", "diversity": NaN}'),
        ("/v1/retrieve", '{"question": "What is ragqa?", "diversity": Infinity}'),
        ("/v1/ask", '{"question": "What is ragqa?", "temperature": NaN}'),
        ("/v1/ask", '{"question": "What is ragqa?", "top_p": -Infinity}'),
        ("/v1/chat/completions", '{"model": "ragqa/default", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'),
    ],
)
def test_non_finite_numbers_get_a_422(client, path, body):
    response = raw_post(client, path, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail


@pytest.mark.parametrize("path", ["/v1/retrieve", "/v1/ask"])
@pytest.mark.parametrize("field", ["question", "collection"])
def test_lone_surrogates_get_a_422(client, path, field):
    body = {"question": "What is ragqa?", field: "\ud800"}
    response = raw_post(client, path, json.dumps(body))  # ensure_ascii: sends the \ud800 escape
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])


def test_lone_surrogate_in_an_openai_message_gets_a_422(client):
    body = {"model": "ragqa/default", "messages": [{"role": "user", "content": "a \udfff b"}]}
    response = raw_post(client, "/v1/chat/completions", json.dumps(body))
    assert response.status_code == 422, response.text
    assert "error" in response.json()


def test_a_huge_integer_is_a_422_not_a_500(client):
    response = raw_post(client, "/v1/retrieve", '{"question": "q?", "top_k": ' + "9" * 4000 + "}")
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "path, field, value",
    [
        ("/v1/retrieve", "diversity", False),  # found by the negative fuzz: a bool passed as 0.0
        ("/v1/retrieve", "top_k", "5"),
        ("/v1/ask", "temperature", True),
        ("/v1/ask", "stream", 1),
        ("/v1/ask", "max_tokens", 8.0),
    ],
)
def test_numbers_and_booleans_of_the_wrong_type_are_refused(client, path, field, value):
    response = client.post(path, json={"question": "What is ragqa?", field: value})
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])
