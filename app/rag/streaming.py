"""The ask pipeline, streamed: the sources first, then the answer token by token, then the result.

It runs the same steps as ``AskPipeline.run`` (retrieve, pack, generate, judge), with the
pipeline's own retriever, packer, stop sequences and refusal check, so both paths agree.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from app.rag.pipeline import ANSWER_STOP, AskPipeline, AskQuery, AskResult, _ms
from app.rag.prompts import REFUSAL
from app.rag.retrieval import Passage


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    passages: list[Passage]
    passages_dropped: int


@dataclass(frozen=True, slots=True)
class TokenEvent:
    text: str


@dataclass(frozen=True, slots=True)
class DoneEvent:
    result: AskResult
    time_to_first_token_ms: float | None


StreamEvent = SourcesEvent | TokenEvent | DoneEvent


async def stream_answer(pipeline: AskPipeline, query: AskQuery) -> AsyncIterator[StreamEvent]:
    """Close the iterator to stop early: that closes the LLM stream, which stops generation."""
    if query.adapter:
        await pipeline.check_adapter(query.adapter)
    prepared = await pipeline.prepare(query)
    packed, started = prepared.packed, prepared.started
    yield SourcesEvent(packed.passages, packed.dropped)

    generating = time.perf_counter()
    if prepared.refuse_without_llm(pipeline.refusal_min_score):
        # The same answer run() gives when nothing retrieved is close enough: no LLM call.
        yield TokenEvent(REFUSAL)
        grounded, refused = pipeline.judge(REFUSAL, packed.passages)
        done = time.perf_counter()
        yield DoneEvent(
            AskResult(
                answer=REFUSAL, grounded=grounded, refused=refused, sources=packed.passages,
                passages_dropped=packed.dropped, prompt_mode=query.prompt_mode,
                model=query.adapter or pipeline.llm.model, prompt_tokens=0, completion_tokens=0,
                finish_reason=None,
                timings_ms={**prepared.timings_ms, "generate": _ms(done - generating), "total": _ms(done - started)},
                top_score=prepared.top_score,
            ),
            None,
        )  # fmt: skip
        return
    first_token: float | None = None
    pieces: list[str] = []
    model, finish_reason = pipeline.llm.model, None
    prompt_tokens = completion_tokens = None
    stream = pipeline.llm.chat_stream(
        packed.messages,
        temperature=query.temperature,
        max_tokens=query.max_tokens,
        stop=query.stop or ANSWER_STOP,
        model=query.adapter,
        top_p=query.top_p,
        seed=query.seed,
    )
    try:
        async for delta in stream:
            model = delta.model or model
            finish_reason = delta.finish_reason or finish_reason
            prompt_tokens = delta.prompt_tokens or prompt_tokens
            completion_tokens = delta.completion_tokens or completion_tokens
            if delta.text:
                if first_token is None:
                    first_token = time.perf_counter()
                    # The whole answer is stripped in the non-streamed path; match its start.
                    text = delta.text.lstrip()
                    if not text:
                        first_token = None
                        continue
                else:
                    text = delta.text
                pieces.append(text)
                yield TokenEvent(text)
    finally:
        # Also when cancelled (the client went away): closing the stream stops the generation.
        with anyio.CancelScope(shield=True):
            await stream.aclose()
    done = time.perf_counter()

    answer = "".join(pieces).strip()
    if completion_tokens is None:
        # llama.cpp's server reports no usage when streaming, and a delta can hold several
        # tokens: count the answer with the engine's own tokenizer.
        completion_tokens = await pipeline.packer.count(answer) if answer else 0
    grounded, refused = pipeline.judge(answer, packed.passages)
    result = AskResult(
        answer=answer,
        grounded=grounded,
        refused=refused,
        sources=packed.passages,
        passages_dropped=packed.dropped,
        prompt_mode=query.prompt_mode,
        model=model,
        # Without reported usage, the packer's count is the prompt's size in the engine's tokens.
        prompt_tokens=prompt_tokens or packed.prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
        timings_ms={
            **prepared.timings_ms,
            "generate": _ms(done - generating),
            "total": _ms(done - started),
        },
        top_score=prepared.top_score,
    )
    yield DoneEvent(result, _ms(first_token - generating) if first_token else None)
