"""The "also seen" findings of the probe that were decided as fixes (docs/reliability.md)."""

from __future__ import annotations


def test_error_bodies_do_not_expose_the_index_path_or_llm_url(client):
    index_dir = client.index_dir
    cdir = index_dir / "default"
    version = (cdir / "CURRENT").read_text().strip()
    (cdir / version / "manifest.json").write_text("{ broken")
    response = client.post("/v1/retrieve", json={"question": "What is ragqa?"})
    assert response.status_code >= 400
    assert str(index_dir) not in response.text and str(index_dir.resolve()) not in response.text
    ask = client.post("/v1/ask", json={"question": "What is ragqa?", "collection": "nope"})
    llm_url = client.app.state.services.llm.base_url
    assert llm_url not in ask.text


def test_the_llm_url_is_not_in_a_503(make_client):
    client = make_client(refusal_min_score=-1.0, min_relevance=-1.0)
    response = client.post("/v1/ask", json={"question": "What is ragqa?", "mode": "rag"})
    assert response.status_code == 503
    assert client.app.state.services.llm.base_url not in response.text


def test_readyz_names_nothing_when_keys_are_set(make_client):
    client = make_client(api_keys=["secret-key"])
    body = client.get("/readyz").json()
    assert body["collections"] == [] and body["llm_base_url"] == ""
    assert "default" not in str(body)
    assert client.get("/healthz").status_code == 200  # no key needed


def test_a_400_on_the_openai_route_is_not_a_server_error(client):
    response = client.post("/v1/chat/completions", json={"model": "ragqa/nope", "messages": [{"role": "user", "content": "hi"}]})
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["type"] != "server_error"
    from app.api.errors import openai_error_type

    assert openai_error_type(400) == "invalid_request_error"
    assert openai_error_type(409) == "invalid_request_error"
    assert openai_error_type(503) == "server_error"


def test_the_page_sends_csp_and_frame_options(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"


def test_openapi_declares_the_bearer_scheme_with_keys(make_client):
    client = make_client(api_keys=["secret-key"])
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/retrieve"]["post"]["security"] == [{"bearer": []}]
    detail = schema["paths"]["/v1/retrieve"]["post"]["responses"]["404"]["content"]["application/json"]["schema"]
    assert detail == {"$ref": "#/components/schemas/ErrorMessage"}
