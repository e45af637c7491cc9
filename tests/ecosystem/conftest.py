"""A `ragqa serve` over the sample collection with API keys on, as an operator runs it."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import start_server, stop_server

API_KEY = "test-key-ecosystem"
OTHER_KEY = "test-key-second"
# Short answers keep the embedded LLM's share of the test time small.
ANSWER_TOKENS = 40


@pytest.fixture(scope="session")
def keyed_server(sample_index, tmp_path_factory):
    server = start_server(
        sample_index,
        tmp_path_factory.mktemp("eco-logs") / "serve.log",
        extra_env={
            "RAGQA_API_KEYS": f"{API_KEY},{OTHER_KEY}",
            "RAGQA_RATE_LIMIT": "1000/minute",
            "RAGQA_LLM_DEFAULT_MAX_TOKENS": str(ANSWER_TOKENS),
            # Fewer passages, shorter prompts; and patience for a machine shared with other jobs.
            "RAGQA_TOP_K": "3",
            "RAGQA_LLM_TIMEOUT_S": "900",
        },
    )
    yield server
    if server.process.poll() is None:
        stop_server(server)


@pytest.fixture
def http(keyed_server):
    with httpx.Client(
        base_url=keyed_server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600
    ) as client:
        yield client


def parse_sse(lines) -> list[tuple[str, str]]:
    """(event, data) pairs from SSE lines; comment lines (pings) are skipped."""
    events, event, data = [], "message", []
    for line in lines:
        if line == "":
            if data:
                events.append((event, "\n".join(data)))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        events.append((event, "\n".join(data)))
    return events


def json_events(events):
    return [(name, json.loads(data)) for name, data in events]
