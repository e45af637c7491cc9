"""LLMClient.count_tokens: the tokenizer route is found once, and a server without one is asked once."""

from __future__ import annotations

import asyncio

import httpx

from app.llm.client import LLMClient


def counting_client(routes: dict[str, int]) -> tuple[LLMClient, list[str]]:
    """A client whose server answers 200 with ``routes[path]`` tokens on the routes it has, 404 elsewhere."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path in routes:
            return httpx.Response(200, json={"count": routes[request.url.path]})
        return httpx.Response(404, json={"detail": "Not Found"})

    client = LLMClient("http://llm.invalid/v1", "m")
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return client, asked


def count_three_times(client: LLMClient) -> list[int | None]:
    async def go():
        return [await client.count_tokens(f"text {i}") for i in range(3)]

    return asyncio.run(go())


def test_a_server_without_a_tokenizer_is_asked_once():
    client, asked = counting_client({})
    assert count_three_times(client) == [None, None, None]
    assert sorted(asked) == ["/extras/tokenize", "/tokenize"]


def test_the_route_that_answered_is_the_only_one_asked_again():
    client, asked = counting_client({"/tokenize": 7})
    assert count_three_times(client) == [7, 7, 7]
    assert asked == ["/extras/tokenize", "/tokenize", "/tokenize", "/tokenize"]


def test_a_server_error_is_not_taken_for_a_missing_route():
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(500)

    client = LLMClient("http://llm.invalid/v1", "m")
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    assert count_three_times(client) == [None, None, None]
    assert calls["n"] == 6  # asked again each time: a 500 may pass
