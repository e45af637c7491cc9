"""AskPipeline.run() and stream() over the fakes: one set of steps, the same answer (fast tier)."""

from __future__ import annotations

import asyncio

import pytest

from app.core.store import CollectionCache, IndexStore
from app.rag.packing import ContextPacker
from app.rag.pipeline import (
    ANSWER_STOP,
    AskPipeline,
    AskQuery,
    DoneEvent,
    Sampling,
    SourcesEvent,
    TokenEvent,
)
from app.rag.prompts import REFUSAL, PromptMode, Strategy
from app.rag.retrieval import Retriever
from app.rag.shots import ExemplarSelector
from tests.fakes import FakeChatLLM, FakeEmbedder, ingest_samples


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-index")
    ingest_samples(root)
    return root


def pipeline(index_dir, llm, refusal_min_score=-1.0) -> AskPipeline:
    retriever = Retriever(CollectionCache(IndexStore(index_dir)), FakeEmbedder())
    return AskPipeline(
        retriever, ContextPacker(llm, 4096), llm, 0.0, ExemplarSelector("fixed"), refusal_min_score
    )


def query(**changes) -> AskQuery:
    fields = {"question": "What is ragqa?", "collection": "default", "top_k": 3}
    return AskQuery(**{**fields, "prompt_mode": PromptMode.one_shot, **changes})


async def collect(events):
    return [event async for event in events]


def test_sampling_reaches_the_llm_as_one_bundle(index_dir):
    llm = FakeChatLLM()
    sampling = Sampling(temperature=0.5, max_tokens=64, top_p=0.9, seed=3)
    asyncio.run(pipeline(index_dir, llm).run(query(sampling=sampling)))
    (call,) = llm.calls
    assert (call["temperature"], call["max_tokens"], call["top_p"], call["seed"]) == (0.5, 64, 0.9, 3)
    assert call["stop"] == ANSWER_STOP  # the default stop sequence for an answer
    llm.calls.clear()
    asyncio.run(pipeline(index_dir, llm).run(query(sampling=sampling.but(stop=["."]))))
    assert llm.calls[0]["stop"] == ["."]


def test_cot_and_step_back_calls(index_dir):
    llm = FakeChatLLM(["thinking", "Answer: it"])
    result = asyncio.run(pipeline(index_dir, llm).run(query(strategy=Strategy.cot)))
    assert result.answer == "it" and result.reasoning == "thinking"
    assert [c["stop"] for c in llm.calls] == [None, ANSWER_STOP]
    llm = FakeChatLLM(["What does ragqa do?"])
    result = asyncio.run(pipeline(index_dir, llm).run(query(strategy=Strategy.step_back)))
    assert result.step_back_question == "What does ragqa do?"
    assert (llm.calls[0]["max_tokens"], llm.calls[0]["stop"]) == (48, ["\n"])


@pytest.mark.parametrize("refusal_min_score", [-1.0, 1.0])
def test_stream_gives_the_result_run_gives(index_dir, refusal_min_score):
    ran = asyncio.run(pipeline(index_dir, FakeChatLLM(), refusal_min_score).run(query()))
    events = asyncio.run(collect(pipeline(index_dir, FakeChatLLM(), refusal_min_score).stream(query())))
    assert isinstance(events[0], SourcesEvent) and isinstance(events[-1], DoneEvent)
    streamed = events[-1].result
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == streamed.answer
    assert events[0].passages == streamed.sources
    same = ("answer", "grounded", "refused", "sources", "passages_dropped", "prompt_mode", "model")
    for key in (*same, "strategy", "mode", "top_score", "answer_source", "citations", "supported_share", "completion_tokens"):
        assert getattr(streamed, key) == getattr(ran, key), key
    assert (ran.answer == REFUSAL) is (refusal_min_score == 1.0)


def test_the_refusal_threshold_compares_the_best_sentence_too(index_dir):
    """A threshold above every chunk's cosine but below a chunk's best sentence: the LLM is asked."""
    prepared = asyncio.run(pipeline(index_dir, FakeChatLLM()).prepare(query()))
    best_chunk = max(p.score for p in prepared.passages)
    assert prepared.top_score == max(p.relevance for p in prepared.passages) > best_chunk
    between = (best_chunk + prepared.top_score) / 2
    llm = FakeChatLLM(["ragqa answers questions."])
    result = asyncio.run(pipeline(index_dir, llm, between).run(query()))
    assert len(llm.calls) == 1 and not result.refused and result.top_score == prepared.top_score
    llm = FakeChatLLM(["ragqa answers questions."])
    result = asyncio.run(pipeline(index_dir, llm, prepared.top_score + 1e-6).run(query()))
    assert llm.calls == [] and result.refused
