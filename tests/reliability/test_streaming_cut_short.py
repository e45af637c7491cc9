"""Failure 4: a stream that ends without a finish reason is an error, never a complete answer;
and the embedded server is started so that it does not interrupt streams."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app.llm.client import LLMClient, LLMError, Sampling
from tests.reliability.conftest import chunk, install_fake_llm, sse


def stream_of(*chunks):
    return lambda request: httpx.Response(
        200, content=sse(*chunks), headers={"content-type": "text/event-stream"}
    )


async def collect(llm: LLMClient) -> list:
    out = []
    async for delta in llm.chat_stream([{"role": "user", "content": "q"}], Sampling(0, 8)):
        out.append(delta)
    return out


def test_a_stream_without_finish_reason_raises():
    llm = LLMClient("http://llm.invalid/v1", "fake-llm")
    install_fake_llm(llm, stream_of(chunk("one"), chunk(" two"), chunk(" three")))
    with pytest.raises(LLMError, match="without a finish reason"):
        asyncio.run(collect(llm))


def test_a_complete_stream_still_ends_normally():
    llm = LLMClient("http://llm.invalid/v1", "fake-llm")
    install_fake_llm(llm, stream_of(chunk("one"), chunk(" two"), chunk(finish="stop")))
    deltas = asyncio.run(collect(llm))
    assert "".join(d.text for d in deltas) == "one two"
    assert deltas[-1].finish_reason == "stop"


def test_the_sse_route_ends_a_cut_stream_with_an_error_event(make_client):
    client = make_client(refusal_min_score=-1.0, min_relevance=-1.0)  # fake vectors: never refuse
    llm = client.app.state.services.llm
    install_fake_llm(llm, stream_of(chunk("Ragqa"), chunk(" is")))  # cut: no finish reason
    with client.stream("POST", "/v1/ask", json={"question": "What is ragqa?", "stream": True, "mode": "rag"}) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    events = [line.removeprefix("event: ").strip() for line in body.splitlines() if line.startswith("event:")]
    assert events[-1] == "error", events
    assert "done" not in events


def test_the_embedded_server_does_not_interrupt_requests(tmp_path):
    from llama_cpp.server.settings import ServerSettings

    from app.llm.embedded import EmbeddedLLMServer

    assert "interrupt_requests" in ServerSettings.model_fields  # the flag the installed server reads
    model = tmp_path / "m.gguf"
    model.write_bytes(b"")
    command = EmbeddedLLMServer(model_path=model, alias="a", n_ctx=512, port=1).command()
    i = command.index("--interrupt_requests")
    assert command[i + 1] == "False"
    # The same words parsed the way `python -m llama_cpp.server` parses them.
    from llama_cpp.server.cli import _parse_bool_arg

    assert _parse_bool_arg(command[i + 1]) is False
    json.dumps(command)
