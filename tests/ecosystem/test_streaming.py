"""/v1/ask with stream: true: SSE framing, event order, and stopping when the client goes away."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.llm.client import LLMClient, Sampling
from tests.ecosystem.conftest import ANSWER_TOKENS, json_events, parse_sse

pytestmark = pytest.mark.slow

QUESTION = "Does ragqa need a GPU?"


def metric_value(text: str, name: str, labels: dict | None = None) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return sample.value
    raise AssertionError(f"{name} {labels or ''} not in the scrape")


def test_ask_stream_sends_sources_tokens_then_done(http):
    with http.stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True, "mode": "rag"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        events = json_events(parse_sse(response.iter_lines()))
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"} and len(names) >= 4
    sources = events[0][1]["sources"]
    assert sources[0]["doc"] == "faq.txt" and [s["rank"] for s in sources] == list(range(1, len(sources) + 1))
    done = events[-1][1]
    streamed = "".join(data["text"] for name, data in events if name == "token")
    # The done event carries the answer the user reads: a quote replaces an unsupported one.
    assert streamed.strip() == (done["generated_answer"] or done["answer"]) and done["answer"]
    assert 0 < done["usage"]["completion_tokens"] <= ANSWER_TOKENS
    assert done["usage"]["prompt_tokens"] > 100
    timings = done["timings_ms"]
    assert 0 < timings["first_token"] <= timings["generate"] <= timings["total"]


def test_ask_stream_errors_before_streaming_are_plain_http_errors(http):
    response = http.post("/v1/ask", json={"question": QUESTION, "collection": "nope", "stream": True})
    assert response.status_code == 404 and "nope" in response.json()["detail"]


def test_client_disconnect_cancels_the_stream(http):
    before = metric_value(http.get("/metrics").text, "ragqa_streams_cancelled_total")
    with http.stream(
        "POST", "/v1/ask", json={"question": QUESTION, "stream": True, "max_tokens": 512, "mode": "rag"}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break  # leave after the first token: closing the response drops the connection
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = metric_value(http.get("/metrics").text, "ragqa_streams_cancelled_total")
        if after > before:
            break
        time.sleep(0.2)
    assert after == before + 1


@pytest.mark.anyio
async def test_closing_the_llm_stream_stops_generation_upstream(keyed_server):
    """With llama.cpp's server, one request runs at a time: if generation went on after the
    stream was closed, the next request would wait for ~1,000 more tokens."""
    (pid,) = keyed_server.llm_children()
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    port = cmdline[cmdline.index(b"--port") + 1].decode()
    llm = LLMClient(f"http://127.0.0.1:{port}/v1", "smollm2-135m-instruct", timeout_s=600)
    counting = [{"role": "user", "content": "Count from 1 to 1000, one number per line, without stopping."}]
    try:
        # The control: left alone, the model keeps counting well past the tokens read below.
        control = await llm.chat(counting, Sampling(0.0, 60))
        assert control.completion_tokens >= 50, "the model should keep counting"

        stream = llm.chat_stream(counting, Sampling(0.0, 1000))
        received, arrivals = [], []
        async for delta in stream:
            received.append(delta)
            arrivals.append(time.perf_counter())
            if len(received) == 6:
                break
        await stream.aclose()
        # Decode time per token on this machine now, from the stream itself.
        per_token = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)
        started = time.perf_counter()
        await llm.chat([{"role": "user", "content": "Hi"}], Sampling(0.0, 1))
        waited = time.perf_counter() - started
    finally:
        await llm.aclose()
    # Had the other tokens been generated, the next request would have waited for all of them.
    remaining = 1000 - len(received)
    print(f"next request waited {waited:.2f} s; {remaining} more tokens would take {remaining * per_token:.1f} s")
    assert waited < 0.25 * remaining * per_token
