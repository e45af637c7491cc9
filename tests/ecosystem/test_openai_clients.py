"""The official openai SDK and LangChain's ChatOpenAI, unchanged, pointed at a running ragqa."""

from __future__ import annotations

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from tests.ecosystem.conftest import ANSWER_TOKENS, API_KEY

pytestmark = pytest.mark.slow

MODEL = "ragqa/default"
FIRST = "How many dimensions do the embedding vectors in ragqa have?"
# A follow-up that retrieves poorly on its own (best chunk cosine 0.18, measured) and well once
# it says what "it" is (above 0.3).
TOPIC = "How does ragqa ingest documents?"
TOPIC_ANSWER = "It splits each document into chunks, embeds them and writes a new index version [1]."
FOLLOW_UP = "What happens if it crashes?"


@pytest.fixture(scope="module")
def sdk(keyed_server):
    return openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key=API_KEY, timeout=600, max_retries=0)


@pytest.fixture(scope="module")
def chat_model(keyed_server):
    return ChatOpenAI(
        base_url=f"{keyed_server.url}/v1",
        api_key=API_KEY,
        model=MODEL,
        temperature=0,
        max_tokens=ANSWER_TOKENS,
        timeout=600,
        max_retries=0,
    )


def test_models_lists_each_collection(sdk):
    assert [m.id for m in sdk.models.list()] == [MODEL]


def test_sdk_plain_answer_has_sources_and_usage(sdk):
    response = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": FIRST}], max_tokens=ANSWER_TOKENS
    )
    assert response.object == "chat.completion" and response.model == MODEL
    assert response.choices[0].message.content.strip()
    assert response.choices[0].finish_reason in ("stop", "length")
    assert 0 < response.usage.completion_tokens <= ANSWER_TOKENS
    sources = response.model_extra["sources"]
    assert sources and sources[0]["rank"] == 1
    assert "ingestion.md" in {s["doc"] for s in sources}
    # No history: the question is used as asked.
    assert response.model_extra["ragqa"]["standalone_question"] == FIRST


def test_sdk_streaming_sends_sources_then_tokens_then_usage(sdk):
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": FIRST}],
        max_tokens=ANSWER_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].model_extra["sources"], "the first chunk carries the sources"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_sdk_follow_up_is_condensed_before_retrieval(sdk, http):
    alone = http.post("/v1/retrieve", json={"question": FOLLOW_UP}).json()["passages"]
    response = sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": TOPIC},
            {"role": "assistant", "content": TOPIC_ANSWER},
            {"role": "user", "content": FOLLOW_UP},
        ],
        max_tokens=ANSWER_TOKENS,
    )
    info, sources = response.model_extra["ragqa"], response.model_extra["sources"]
    print(
        f"standalone question: {info['standalone_question']!r}; top source {sources[0]['doc']} "
        f"{sources[0]['score']:.3f}, alone {alone[0]['doc']} {alone[0]['score']:.3f}"
    )
    assert info["standalone_question"] != FOLLOW_UP
    assert sources[0]["doc"] == "ingestion.md"
    assert sources[0]["score"] >= 0.3 > alone[0]["score"]
    assert response.choices[0].message.content.strip()


def test_sdk_wrong_key_is_refused(keyed_server):
    client = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert "invalid API key" in str(caught.value)


def test_sdk_unknown_model_is_404(sdk):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="ragqa/nope", messages=[{"role": "user", "content": "hi?"}])
    assert "nope" in str(caught.value) and "default" in str(caught.value)


def test_langchain_invoke(chat_model):
    message = chat_model.invoke([HumanMessage(FIRST)])
    assert isinstance(message, AIMessage) and message.content.strip()
    # max_tokens reached ragqa (LangChain sends max_completion_tokens): the cap held.
    assert 0 < message.usage_metadata["output_tokens"] <= ANSWER_TOKENS


def test_langchain_stream(chat_model):
    pieces = [chunk.content for chunk in chat_model.stream([HumanMessage(FIRST)])]
    assert sum(1 for p in pieces if p) >= 2, "the answer arrives in several pieces"
    assert "".join(pieces).strip()


def test_langchain_two_turn_conversation(chat_model):
    history = [HumanMessage(TOPIC)]
    first = chat_model.invoke(history)
    assert first.content.strip()
    history += [first, HumanMessage(FOLLOW_UP)]
    second = chat_model.invoke(history)
    assert second.content.strip()
