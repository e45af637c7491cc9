"""The OpenAI-compatible surface: each collection is a model, ``ragqa/<collection>``.

A chat completion answers the last user message with RAG over that collection. Earlier turns
are condensed with the LLM into a standalone question first, so follow-ups retrieve well.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from app.api import metrics
from app.api.deps import ServicesDep
from app.api.openai_schemas import (
    MODEL_PREFIX,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChunkChoice,
    DeltaMessage,
    ModelCard,
    ModelList,
    RagqaInfo,
    completion_id,
    total_usage,
)
from app.api.schemas import MAX_QUESTION_CHARS, Citation, Source
from app.api.streaming import data, guarded, sse_response, start_stream
from app.core.store import StoreError
from app.llm.client import LLMError
from app.rag.conversation import Condensed, condense_question
from app.rag.pipeline import DoneEvent, SourcesEvent, TokenEvent

router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    """Each collection as a model that answers from it."""

    def cards() -> list[ModelCard]:
        out = []
        for name in services.store.list_collections():
            try:
                created = services.store.read_manifest(name).created_at
            except (StoreError, OSError):
                continue  # a broken collection answers nothing: not a model (GET /v1/collections marks it)
            stamp = int(datetime.fromisoformat(created).timestamp()) if created else 0
            out.append(ModelCard(id=f"{MODEL_PREFIX}{name}", created=stamp))
        return out

    return ModelList(data=await run_in_threadpool(cards))


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


@router.post("/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(body: ChatCompletionRequest, services: ServicesDep):
    """OpenAI chat completions, answered from the collection; ``stream: true`` for SSE chunks."""
    turns = body.turns()
    if not turns or turns[-1][0] != "user" or not turns[-1][1]:
        raise _invalid("messages", "the last message must be a non-empty user message")
    question = turns[-1][1]
    if len(question) > MAX_QUESTION_CHARS:
        raise _invalid("messages", f"the last user message is over {MAX_QUESTION_CHARS} characters")
    # An unknown model is a 404 before any LLM time is spent.
    await run_in_threadpool(services.collections.get, body.collection())

    condensed = await condense_question(services.llm, turns[:-1], question)
    metrics.observe_tokens(condensed.prompt_tokens, condensed.completion_tokens)
    query = body.to_query(services.settings, condensed.question)
    if body.stream:
        events = guarded(services.pipeline.stream(query))
        first = await start_stream(events)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse_response(_chunks(body, condensed, first, events, include_usage))

    result = await services.pipeline.run(query)
    metrics.observe_answer(result)
    return ChatCompletionResponse.from_result(body.model, result, condensed)


async def _chunks(
    body: ChatCompletionRequest,
    condensed: Condensed,
    first: SourcesEvent,
    events: AsyncIterator,
    include_usage: bool,
) -> AsyncIterator[dict]:
    chunk_id, created = completion_id(), int(time.time())

    def chunk(delta: DeltaMessage, finish: str | None = None, **extra) -> dict:
        return data(
            ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=body.model,
                choices=[ChunkChoice(delta=delta, finish_reason=finish)],
                **extra,
            ).model_dump(exclude_none=True)
        )

    info = RagqaInfo(
        standalone_question=condensed.question,
        prompt_mode=body.prompt_mode,
        passages_dropped=first.passages_dropped,
    )
    yield chunk(DeltaMessage(role="assistant", content=""), sources=Source.of(first.passages), ragqa=info)
    async for event in events:
        if isinstance(event, TokenEvent):
            yield chunk(DeltaMessage(content=event.text))
        elif isinstance(event, DoneEvent):
            result = event.result
            done_info = info.model_copy(
                update={
                    "grounded": result.grounded,
                    "refused": result.refused,
                    "llm_model": result.model,
                    "timings_ms": {**result.timings_ms, "first_token": event.time_to_first_token_ms},
                    "answer_source": result.answer_source,
                    "answer": result.answer if result.generated_answer is not None else None,
                }
            )
            yield chunk(
                DeltaMessage(),
                result.finish_reason or "stop",
                citations=Citation.of(result.citations),
                ragqa=done_info,
            )
            if include_usage:
                usage = total_usage(result, condensed)
                yield data(
                    ChatCompletionChunk(
                        id=chunk_id, created=created, model=body.model, choices=[], usage=usage
                    ).model_dump(exclude_none=True)
                )
        elif isinstance(event, LLMError):
            yield data({"error": {"message": str(event), "type": "llm_error"}})
    yield {"data": "[DONE]"}
