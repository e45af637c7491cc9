"""The probe as a standing test: schemathesis over the app's own /openapi.json.

Every operation is fuzzed in-process against the real app (fake embedder, fake LLM) with a
bounded number of examples; each response must not be a 5xx and must match the schema.
DELETE routes are pointed at a collection of their own; the LLM routes get a few examples.
RAGQA_FUZZ_EXAMPLES raises the budget (e.g. 100 for a probe run of well over 1,000 cases).
"""

from __future__ import annotations

import json
import os

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error, response_schema_conformance  # noqa: E402

from tests.reliability.conftest import chunk, completion, ingest_samples, install_fake_llm, sse  # noqa: E402

EXAMPLES = int(os.environ.get("RAGQA_FUZZ_EXAMPLES", "15"))
# Routes that call the LLM or draw a map: a few examples each.
SLOW_ROUTES = {"/v1/ask", "/v1/chat/completions", "/v1/collections/{name}/map.png", "/v1/collections/{name}/map"}
DELETE_TARGET = "fuzz-deletes"
CASES_RUN: list[str] = []


def fake_llm(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content or b"{}")
    if body.get("stream"):
        return httpx.Response(
            200, content=sse(chunk("An answer."), chunk(finish="stop")),
            headers={"content-type": "text/event-stream"},
        )  # fmt: skip
    return httpx.Response(200, json=completion("An answer."))


@pytest.fixture
def fuzz_app(make_client, monkeypatch):
    import app.llm.client as client_module
    from app.llm.client import LLMClient

    class FakeLLMClient(LLMClient):  # schemathesis runs the app's lifespan again: fake at build
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            install_fake_llm(self, fake_llm)

    monkeypatch.setattr(client_module, "LLMClient", FakeLLMClient)
    client = make_client(refusal_min_score=-1.0, min_relevance=-1.0)
    ingest_samples(client.index_dir, DELETE_TARGET)
    return client


def operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def test_no_5xx_and_responses_match_the_schema(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app.app)
    failures: list[str] = []
    for operation in operations(schema):
        budget = 3 if operation.path in SLOW_ROUTES else EXAMPLES

        @settings(
            max_examples=budget, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy())
        def run(case):
            if case.method.upper() == "DELETE" and case.path_parameters:
                case.path_parameters["name"] = DELETE_TARGET  # never the other collections
            CASES_RUN.append(operation.label)
            response = case.call()
            try:
                case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            except Exception as exc:  # collect every failing operation, not just the first
                failures.append(f"{operation.label}: {response.status_code} {str(exc)[:300]}")
                raise

        try:
            run()
        except Exception:
            pass
    print(f"schemathesis: {len(CASES_RUN)} cases, {len(failures)} failures")
    assert not failures, "\n".join(dict.fromkeys(failures))
    assert len(CASES_RUN) >= 50
