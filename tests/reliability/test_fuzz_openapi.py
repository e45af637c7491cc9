"""The probe as a standing test: schemathesis over the app's own /openapi.json.

Every operation is fuzzed in-process against the real app (fake embedder, fake LLM), with
valid inputs (positive) and with inputs that break the schema (negative). No response may be a
5xx, every response must match the schema, and invalid input must be refused with a 4xx.
DELETE routes are pointed at a collection of their own; the LLM routes get a few examples.
The fast tier runs a small budget; the slow tier runs the probe's size (over 1,000 cases).
RAGQA_FUZZ_EXAMPLES overrides the slow budget per operation.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)

from tests.reliability.conftest import chunk, completion, ingest_samples, install_fake_llm, sse  # noqa: E402

FAST_EXAMPLES = 8
SLOW_EXAMPLES = int(os.environ.get("RAGQA_FUZZ_EXAMPLES", "120"))
PROBE_MIN_CASES = 1000
# Routes that call the LLM or draw a map: a few examples each.
SLOW_ROUTES = {"/v1/ask", "/v1/chat/completions", "/v1/collections/{name}/map.png", "/v1/collections/{name}/map"}
DELETE_TARGET = "fuzz-deletes"


def fake_llm(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content or b"{}")
    if body.get("stream"):
        return httpx.Response(
            200,
            content=sse(chunk("An answer."), chunk(finish="stop")),
            headers={"content-type": "text/event-stream"},
        )
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


def fuzz(app, mode: GenerationMode, examples: int) -> tuple[int, list[str]]:
    """Run every operation with ``examples`` cases in ``mode``; return the case count and failures."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, response_schema_conformance]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    cases_run = 0
    failures: list[str] = []
    for operation in operations(schema):
        budget = min(3, examples) if operation.path in SLOW_ROUTES else examples

        @settings(
            max_examples=budget,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            nonlocal cases_run
            if case.method.upper() == "DELETE" and case.path_parameters:
                case.path_parameters["name"] = DELETE_TARGET  # never the other collections
            cases_run += 1
            response = case.call()
            try:
                case.validate_response(response, checks=checks)
            except Exception as exc:  # collect every failing operation, not just the first
                failures.append(f"{mode.value} {operation.label}: {response.status_code} {str(exc)[:300]}")
                raise

        try:
            run()
        except Exception:
            pass
    return cases_run, failures


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_5xx_and_responses_match_the_schema(fuzz_app, mode):
    cases, failures = fuzz(fuzz_app.app, mode, FAST_EXAMPLES)
    assert not failures, "\n".join(dict.fromkeys(failures))
    assert cases >= 30


@pytest.mark.slow
def test_the_probe_at_full_size(fuzz_app):
    total, failures = 0, []
    for mode in GenerationMode:
        cases, mode_failures = fuzz(fuzz_app.app, mode, SLOW_EXAMPLES)
        print(f"schemathesis {mode.value}: {cases} cases, {len(mode_failures)} failures")
        total += cases
        failures += mode_failures
    assert not failures, "\n".join(dict.fromkeys(failures))
    assert total >= PROBE_MIN_CASES
