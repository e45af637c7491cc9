"""API keys, rate limits, body caps, CORS, request ids and the Prometheus scrape, in process."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.main import create_app
from app.core.config import Settings
from app.llm.embedded import free_loopback_port

pytestmark = pytest.mark.slow  # loads the real embedding model

KEY = "k-1"


def make_client(sample_index, **overrides) -> TestClient:
    dead_llm = f"http://127.0.0.1:{free_loopback_port()}/v1"  # no LLM needed here
    settings = Settings(
        _env_file=None,
        index_dir=sample_index,
        llm_base_url=dead_llm,
        api_keys=[KEY, "k-2"],
        **overrides,
    )
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(sample_index):
    with make_client(sample_index, cors_origins=["https://ui.example"]) as client:
        yield client


AUTH = {"Authorization": f"Bearer {KEY}"}
RETRIEVE = {"question": "What is ragqa?", "top_k": 2}


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing API key"),
        ({"Authorization": "Basic abc"}, "missing API key"),
        ({"Authorization": "Bearer "}, "missing API key"),
        ({"Authorization": "Bearer nope"}, "invalid API key"),
        ({"Authorization": f"Bearer {KEY}x"}, "invalid API key"),
    ],
)
def test_v1_routes_need_a_valid_key(client, headers, message):
    for method, path, body in [
        ("POST", "/v1/retrieve", RETRIEVE),
        ("GET", "/v1/models", None),
        ("GET", "/v1/collections", None),
    ]:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, path
        assert message in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_each_configured_key_works(client):
    for key in (KEY, "k-2"):
        response = client.post("/v1/retrieve", json=RETRIEVE, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200 and len(response.json()["passages"]) == 2


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/", "/static/app.js"])
def test_probes_metrics_and_page_stay_open(client, path):
    assert client.get(path).status_code == 200


def test_readyz_is_open_and_says_why_not_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 503 and "unreachable" in response.json()["llm"]


def test_rate_limit_answers_429_with_retry_after(sample_index):
    with make_client(sample_index, rate_limit="3/minute") as client:
        codes = [client.post("/v1/retrieve", json=RETRIEVE, headers=AUTH).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        limited = client.post("/v1/retrieve", json=RETRIEVE, headers=AUTH)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "rate limit" in limited.json()["detail"]
        # The budget is per key: the other key is not limited.
        other = client.post("/v1/retrieve", json=RETRIEVE, headers={"Authorization": "Bearer k-2"})
        assert other.status_code == 200
        # Probes are never limited.
        assert client.get("/healthz").status_code == 200


def test_body_over_the_cap_is_413(sample_index):
    with make_client(sample_index, max_body_bytes=2048) as client:
        big = {"question": "x" * 3000}
        response = client.post("/v1/ask", json=big, headers=AUTH)
        assert response.status_code == 413 and "2048 bytes" in response.json()["detail"]

        def chunked():  # no Content-Length: counted as it arrives
            yield b'{"question": "'
            yield b"y" * 4096
            yield b'"}'

        response = client.post(
            "/v1/retrieve", content=chunked(), headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 413


def test_cors_preflight_and_headers(client):
    preflight = client.options(
        "/v1/ask",
        headers={
            "Origin": "https://ui.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    refused = client.options(
        "/v1/ask", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in refused.headers
    # A 401 still carries CORS headers, so the browser shows the message.
    response = client.get("/v1/models", headers={"Origin": "https://ui.example"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "https://ui.example"


def test_request_id_is_returned_and_a_caller_id_kept(client):
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    odd = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert odd != "bad id\twith spaces" and len(odd) == 32


def samples(scrape: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(scrape):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_scrape_parses_and_holds_the_series(client):
    def retrieve_count(values):
        key = (
            "ragqa_http_request_duration_seconds_count",
            (("method", "POST"), ("route", "/v1/retrieve"), ("status", "200")),
        )
        return values.get(key, 0)

    before = samples(client.get("/metrics").text)
    client.post("/v1/retrieve", json=RETRIEVE, headers=AUTH)
    client.post("/v1/retrieve", json={"question": ""}, headers=AUTH)  # a 422
    scrape = client.get("/metrics")
    assert scrape.headers["content-type"].startswith("text/plain")
    after = samples(scrape.text)
    assert retrieve_count(after) == retrieve_count(before) + 1
    assert (
        after[
            (
                "ragqa_http_request_duration_seconds_count",
                (("method", "POST"), ("route", "/v1/retrieve"), ("status", "422")),
            )
        ]
        >= 1
    )
    assert after[("ragqa_retrieval_duration_seconds_count", ())] > before.get(
        ("ragqa_retrieval_duration_seconds_count", ()), 0
    )
    assert after[("ragqa_collection_chunks", (("collection", "default"),))] == 5
    for kind in ("timeout", "unavailable", "error"):
        assert ("ragqa_llm_errors_total", (("kind", kind),)) in after
    for kind in ("prompt", "completion"):
        assert ("ragqa_llm_tokens_total", (("kind", kind),)) in after
    assert any(name == "ragqa_generation_duration_seconds_count" for name, _ in after)


def test_llm_unavailable_is_counted(client):
    def unavailable(values):
        return values[("ragqa_llm_errors_total", (("kind", "unavailable"),))]

    before = unavailable(samples(client.get("/metrics").text))
    response = client.post("/v1/ask", json={"question": "What is ragqa?", "mode": "rag"}, headers=AUTH)
    assert response.status_code == 503
    assert unavailable(samples(client.get("/metrics").text)) == before + 1


def test_without_keys_v1_is_open(sample_index):
    with TestClient(
        create_app(Settings(_env_file=None, index_dir=sample_index, llm_base_url="http://127.0.0.1:9/v1"))
    ) as client:
        assert client.get("/v1/models").json()["data"][0]["id"] == "ragqa/default"


def test_access_log_is_json_with_the_request_id(client):
    import io
    import json
    import logging

    from app.api.logs import JsonFormatter

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("ragqa.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        response = client.post("/v1/retrieve", json=RETRIEVE, headers=AUTH)
    finally:
        access.removeHandler(handler)
    (line,) = buffer.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["request_id"] == response.headers["x-request-id"]
    assert (entry["route"], entry["status"], entry["method"]) == ("/v1/retrieve", 200, "POST")
    assert entry["duration_ms"] > 0 and entry["client"].startswith("key:")
    assert KEY not in line  # keys are never logged, only a fingerprint


def test_openai_routes_errors_carry_an_openai_error_object(client):
    refused = client.get("/v1/models")
    assert refused.json()["error"] == {"message": refused.json()["detail"], "type": "authentication_error", "code": 401}
    unknown = client.post(
        "/v1/chat/completions", headers=AUTH, json={"model": "ragqa/nope", "messages": [{"role": "user", "content": "hi?"}]}
    )
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    invalid = client.post("/v1/chat/completions", headers=AUTH, json={"model": "ragqa/default", "messages": []})
    assert invalid.status_code == 422 and "messages" in invalid.json()["error"]["message"]
    not_last_user = client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={
            "model": "ragqa/default",
            "messages": [{"role": "user", "content": "hi?"}, {"role": "assistant", "content": "hello"}],
        },
    )
    assert not_last_user.status_code == 422 and "last message" in not_last_user.json()["error"]["message"]
    # Elsewhere the errors stay as they were.
    assert "error" not in client.post("/v1/retrieve", json={}, headers=AUTH).json()
