"""Every route through the FastAPI test client, with the fake LLM and the fake embedder (fast tier).

The store, retriever, packer, pipeline, routers and middleware are the real ones; only the two
models are replaced, so these tests run in seconds and need no model files.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.schemas import MAX_QUESTION_CHARS
from app.llm.client import Adapter, LLMError, LLMTimeout, LLMUnavailable
from app.rag.prompts import REFUSAL
from tests.fakes import (
    DEFAULT_ANSWER,
    FAKE_LLM_MODEL,
    FakeChatLLM,
    fake_services,
    fake_settings,
    ingest_samples,
)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake-index")
    summary = ingest_samples(root)
    assert summary.added == 5 and not summary.skipped
    return root


@pytest.fixture
def llm():
    return FakeChatLLM(adapters=[Adapter("legal-lora", FAKE_LLM_MODEL, None)])


def make_client(index_dir, llm: FakeChatLLM, **overrides) -> TestClient:
    # refusal_min_score -1: the fake embedder's similarities are low; always ask the fake LLM.
    overrides.setdefault("refusal_min_score", -1.0)
    overrides.setdefault("min_relevance", 0.0)
    # flag: the routes' tests see the scripted answer; tests/api/test_grounding_routes.py
    # covers quote, refuse and extractive.
    overrides.setdefault("unsupported_answer", "flag")
    settings = fake_settings(index_dir, **overrides)
    return TestClient(create_app(settings, fake_services(settings, llm)))


@pytest.fixture
def client(index_dir, llm):
    with make_client(index_dir, llm) as client:
        yield client


def sse_events(response) -> list[tuple[str | None, dict | str]]:
    """(event name, data) per server-sent event; ``[DONE]`` stays a string."""
    events, name = [], None
    for line in response.text.splitlines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            payload = line.split(":", 1)[1].strip()
            events.append((name, payload if payload == "[DONE]" else json.loads(payload)))
            name = None
    return events


# ---- health, web page, metrics ----------------------------------------------------------------


def test_healthz_and_readyz(client, llm):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["collections"] == ["default"]
    llm.ready = False
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["llm"] == "unreachable" and not_ready.json()["problems"]


def test_readyz_without_collections(tmp_path, llm):
    with make_client(tmp_path, llm) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and "ragqa ingest" in response.json()["problems"][0]


def test_web_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get("/static/app.js").status_code == 200
    # The page's own cap on a question is the API's (app/api/schemas.py), written in the HTML.
    assert f'maxlength="{MAX_QUESTION_CHARS}"' in page.text


def test_metrics_scrape_counts_answers(client):
    client.post("/v1/ask", json={"question": "What is ragqa?"})
    text = client.get("/metrics").text
    assert "ragqa_collection_chunks" in text and 'collection="default"' in text
    assert 'ragqa_answers_total{source="generated"}' in text


def test_metrics_route_absent_when_disabled(index_dir, llm):
    with make_client(index_dir, llm, metrics_enabled=False) as client:
        assert client.get("/metrics").status_code == 404


# ---- retrieval and answers --------------------------------------------------------------------


def test_retrieve(client):
    response = client.post("/v1/retrieve", json={"question": "How are documents ingested?", "top_k": 3})
    passages = response.json()["passages"]
    assert response.status_code == 200 and [p["rank"] for p in passages] == [1, 2, 3]
    dense = client.post(
        "/v1/retrieve", json={"question": "How are documents ingested?", "retrieval": "dense"}
    )
    assert dense.status_code == 200 and len(dense.json()["passages"]) == 5


def test_ask_answers_with_sources(client, llm):
    response = client.post("/v1/ask", json={"question": "What is ragqa?", "top_k": 2, "seed": 7})
    body = response.json()
    assert response.status_code == 200
    assert body["answer"] == DEFAULT_ANSWER and not body["refused"]
    assert body["answer_source"] == "generated" and body["mode"] == "rag"
    assert len(body["sources"]) == 2 and body["model"] == FAKE_LLM_MODEL
    assert body["usage"]["completion_tokens"] == len(DEFAULT_ANSWER.split())
    assert set(body["timings_ms"]) >= {"retrieve", "pack", "generate", "ground", "total"}
    (call,) = llm.calls
    assert call["seed"] == 7 and call["stop"] == ["\n\n"] and call["temperature"] == 0.0
    assert "What is ragqa?" in call["messages"][-1]["content"]


def test_ask_refuses_without_the_llm_below_the_threshold(index_dir, llm):
    with make_client(index_dir, llm, refusal_min_score=1.0) as client:
        body = client.post("/v1/ask", json={"question": "What is ragqa?"}).json()
    assert body["answer"] == REFUSAL and body["refused"] and not body["grounded"]
    assert llm.calls == []


def test_ask_strategies_and_modes(client, llm):
    llm.script = ["Step 1: it is a service.", "Answer: a RAG service"]
    cot = client.post("/v1/ask", json={"question": "What is ragqa?", "strategy": "cot"}).json()
    assert cot["reasoning"] == "Step 1: it is a service." and cot["answer"] == "a RAG service"

    llm.script = ["What does ragqa do in general?"]
    step_back = client.post("/v1/ask", json={"question": "What is ragqa?", "strategy": "step_back"}).json()
    assert step_back["step_back_question"] == "What does ragqa do in general?"
    assert "step_back" in step_back["timings_ms"]

    closed = client.post("/v1/ask", json={"question": "What is ragqa?", "mode": "closed_book"}).json()
    assert closed["mode"] == "closed_book" and closed["sources"] == [] and not closed["grounded"]

    compare = client.post("/v1/ask", json={"question": "What is ragqa?", "compare": True}).json()
    assert compare["closed_book"]["answer"] == DEFAULT_ANSWER and "closed_book" in compare["timings_ms"]


def test_streamed_and_non_streamed_answers_agree(client, llm):
    body = {"question": "How does ragqa stream answers?", "top_k": 3}
    plain = client.post("/v1/ask", json=body).json()
    with client.stream("POST", "/v1/ask", json={**body, "stream": True}) as response:
        response.read()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and set(names[1:-1]) == {"token"}
    sources, done = events[0][1], events[-1][1]
    tokens = "".join(data["text"] for name, data in events if name == "token")
    assert tokens == done["answer"] == plain["answer"]
    assert sources["sources"] == plain["sources"]
    assert sources["passages_dropped"] == plain["passages_dropped"]
    for key in ("grounded", "refused", "prompt_mode", "model", "top_score"):
        assert done[key] == plain[key], key
    assert [c["streamed"] for c in llm.calls] == [False, True]
    assert llm.calls[0]["messages"] == llm.calls[1]["messages"]


def test_stream_error_mid_answer_is_the_last_event(client, llm):
    llm.script = [LLMError("the LLM broke")]
    with client.stream("POST", "/v1/ask", json={"question": "What is ragqa?", "stream": True}) as r:
        r.read()
    events = sse_events(r)
    assert events[0][0] == "sources" and events[-1] == ("error", {"detail": "the LLM broke"})


def test_adapters_and_collection_default_adapter(index_dir, llm):
    with make_client(index_dir, llm, collection_adapters={"default": "legal-lora"}) as client:
        listed = client.get("/v1/adapters").json()
        assert listed["adapters"][0]["name"] == "legal-lora"
        assert listed["collection_defaults"] == {"default": "legal-lora"}
        client.post("/v1/ask", json={"question": "What is ragqa?"})
        unknown = client.post("/v1/ask", json={"question": "What is ragqa?", "adapter": "nope"})
    assert llm.calls[0]["model"] == "legal-lora"
    assert unknown.status_code == 422 and "nope" in unknown.json()["detail"]


# ---- collections, documents, map -------------------------------------------------------------


def test_collections_documents_upload_and_delete(tmp_path, llm):
    ingest_samples(tmp_path)
    with make_client(tmp_path, llm) as client:
        listed = client.get("/v1/collections").json()["collections"]
        assert [c["name"] for c in listed] == ["default"] and listed[0]["documents"] == 5
        docs = client.get("/v1/collections/default/documents").json()["documents"]
        assert "faq.txt" in [d["doc"] for d in docs]

        files = [("files", ("notes.md", b"# Notes\n\nThe kiwi bird cannot fly.", "text/markdown"))]
        uploaded = client.post("/v1/collections/new/documents", files=files)
        assert uploaded.status_code == 200 and uploaded.json()["summary"]["added"] == 1
        hit = client.post("/v1/retrieve", json={"question": "kiwi bird", "collection": "new"})
        assert hit.json()["passages"][0]["doc"] == "notes.md"

        removed = client.delete("/v1/collections/default/documents/faq.txt")
        assert removed.status_code == 200 and removed.json()["deleted"] == 1
        missing = client.delete("/v1/collections/default/documents/faq.txt")
        assert missing.status_code == 404

        assert client.delete("/v1/collections/new").json() == {"collection": "new", "deleted": True}
        assert client.get("/v1/collections/new/documents").status_code == 404


def test_embedding_map(client):
    png = client.get("/v1/collections/default/map.png", params={"question": "What is ragqa?"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    points = client.get("/v1/collections/default/map").json()
    assert points["collection"] == "default" and points["points"]


# ---- the OpenAI-compatible surface -------------------------------------------------------------


def test_models_and_chat_completion(client, llm):
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["ragqa/default"]
    llm.script = ["What is ragqa used for?"]  # the condensed standalone question
    body = {
        "model": "ragqa/default",
        "messages": [
            {"role": "user", "content": "Tell me about ragqa."},
            {"role": "assistant", "content": "It is a service."},
            {"role": "user", "content": "What is it for?"},
        ],
    }
    response = client.post("/v1/chat/completions", json=body).json()
    assert response["choices"][0]["message"]["content"] == DEFAULT_ANSWER
    assert response["ragqa"]["standalone_question"] == "What is ragqa used for?"
    assert response["sources"] and response["usage"]["total_tokens"] > 0


def test_chat_completion_streamed_matches(client, llm):
    body = {"model": "ragqa/default", "messages": [{"role": "user", "content": "What is ragqa?"}]}
    plain = client.post("/v1/chat/completions", json=body).json()
    streamed = client.post(
        "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    events = [data for _, data in sse_events(streamed)]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    # The chunks leave out None fields (page, for non-PDF passages).
    assert chunks[0]["sources"] == [{k: v for k, v in s.items() if v is not None} for s in plain["sources"]]
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_chat_completion_errors_have_the_openai_shape(client):
    unknown = client.post(
        "/v1/chat/completions", json={"model": "ragqa/nope", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    last_not_user = client.post(
        "/v1/chat/completions",
        json={"model": "ragqa/default", "messages": [{"role": "assistant", "content": "hi"}]},
    )
    assert last_not_user.status_code == 422
    assert "messages" in last_not_user.json()["error"]["message"]
    too_long = client.post(
        "/v1/chat/completions",
        json={"model": "ragqa/default", "messages": [{"role": "user", "content": "x" * 4001}]},
    )
    assert too_long.status_code == 422


def test_every_openai_route_error_has_the_openai_shape_and_others_do_not(index_dir, llm):
    ask = {"model": "ragqa/default", "messages": [{"role": "user", "content": "What is ragqa?"}]}
    with make_client(index_dir, llm, rate_limit="4/minute", max_body_bytes=2048) as client:
        wrong_method = client.get("/v1/chat/completions")
        unknown_path = client.get("/v1/models/nope/more")
        llm.script = [LLMUnavailable("down")]
        unavailable = client.post("/v1/chat/completions", json=ask)
        big_body = b'{"model": "' + b"x" * 4096 + b'"}'
        too_big = client.post(
            "/v1/chat/completions", content=big_body, headers={"Content-Type": "application/json"}
        )
        limited = client.post("/v1/chat/completions", json=ask)  # the fifth /v1 request this minute
        off_route = client.post("/v1/ask", json={"question": ""})
    expected = [
        (wrong_method, 405, "invalid_request_error"),
        (unknown_path, 404, "not_found_error"),
        (unavailable, 503, "server_error"),
        (too_big, 413, "invalid_request_error"),
        (limited, 429, "rate_limit_error"),
    ]
    for response, status, kind in expected:
        body = response.json()
        assert response.status_code == status, response.text
        assert body["error"] == {"message": body["detail"], "type": kind, "code": status}
    assert limited.headers["retry-after"]
    # /v1/ask is not an OpenAI route (and is over the limit too): plain ``detail`` only.
    assert off_route.status_code == 429 and "error" not in off_route.json()


# ---- validation and error mapping ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body, mentions",
    [
        ({"question": ""}, "question"),
        ({"question": "x" * 4001}, "question"),
        ({"question": "ok?", "top_k": 51}, "top_k"),
        ({"question": "ok?", "collection": "../etc"}, "collection"),
        ({"question": "ok?", "unknown_field": 1}, "unknown_field"),
        ({"question": "ok?", "temperature": 3}, "temperature"),
        ({"question": "ok?", "shots": 2}, "shots"),
        ({"question": "ok?", "mode": "closed_book", "top_k": 3}, "top_k"),
        ({"question": "ok?", "stream": True, "strategy": "cot"}, "stream"),
    ],
)
def test_invalid_requests_get_422(client, body, mentions):
    response = client.post("/v1/ask", json=body)
    assert response.status_code == 422
    assert mentions in json.dumps(response.json()["detail"])


@pytest.mark.parametrize(
    "error, status", [(LLMUnavailable("down"), 503), (LLMTimeout("slow"), 504), (LLMError("bad"), 502)]
)
def test_llm_errors_map_to_statuses(client, llm, error, status):
    llm.script = [error]
    response = client.post("/v1/ask", json={"question": "What is ragqa?"})
    assert response.status_code == status and response.json()["detail"] == str(error)


def test_unknown_collection_is_404(client):
    response = client.post("/v1/ask", json={"question": "What is ragqa?", "collection": "nope"})
    assert response.status_code == 404 and "nope" in response.json()["detail"]


# ---- auth, rate limits, middleware ------------------------------------------------------------------


def test_api_keys(index_dir, llm):
    with make_client(index_dir, llm, api_keys=["k-1"]) as client:
        assert client.get("/v1/collections").status_code == 401
        bad = client.get("/v1/collections", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and "invalid API key" in bad.json()["detail"]
        ok = client.get("/v1/collections", headers={"Authorization": "Bearer k-1"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200  # open
        openai_401 = client.get("/v1/models")
        assert openai_401.json()["error"]["type"] == "authentication_error"
        assert client.get("/metrics").status_code == 200  # open unless RAGQA_METRICS_REQUIRE_KEY


def test_metrics_can_require_a_key(index_dir, llm):
    with make_client(index_dir, llm, api_keys=["k-1"], metrics_require_key=True) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer k-1"}).status_code == 200
        assert client.get("/healthz").status_code == 200  # never needs one


def test_rate_limit(index_dir, llm):
    with make_client(index_dir, llm, rate_limit="2/minute") as client:
        codes = [client.get("/v1/collections").status_code for _ in range(3)]
        limited = client.get("/v1/collections")
    assert codes == [200, 200, 429] and int(limited.headers["retry-after"]) >= 1


def test_request_id_body_limit_and_cors(index_dir, llm):
    with make_client(index_dir, llm, cors_origins=["https://ui.example"], max_body_bytes=2048) as client:
        given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert given.headers["x-request-id"] == "abc-123"
        made = client.get("/healthz", headers={"X-Request-ID": "bad id!"})
        assert made.headers["x-request-id"] != "bad id!" and len(made.headers["x-request-id"]) == 32
        big = client.post(
            "/v1/ask",
            content=b'{"question": "' + b"x" * 4096 + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert big.status_code == 413
        preflight = client.options(
            "/v1/ask",
            headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"


# The first line of each sample document (a "#" heading or a title line); none has "##" sections.
SAMPLE_TITLES = {
    "faq.txt": "Frequently asked questions",
    "ingestion.md": "How ingestion works",
    "korean.md": "한국어 지원",
    "overview.md": "What ragqa is",
    "serving.md": "How questions are answered",
}


def test_sources_carry_title_and_section_outside_their_text(client):
    retrieved = client.post("/v1/retrieve", json={"question": "How does ingestion work?", "top_k": 5}).json()
    asked = client.post("/v1/ask", json={"question": "How does ingestion work?", "top_k": 5}).json()
    chat = client.post(
        "/v1/chat/completions",
        json={
            "model": "ragqa/default",
            "messages": [{"role": "user", "content": "How does ingestion work?"}],
        },
    ).json()
    for sources in (retrieved["passages"], asked["sources"], chat["sources"]):
        assert sources and all("title" in s and "section" in s for s in sources)
        assert "ingestion.md" in {s["doc"] for s in sources}
        assert all(s["title"] == SAMPLE_TITLES[s["doc"]] and s["section"] is None for s in sources)
        assert all(not s["text"].startswith(s["title"] + " — ") for s in sources)
