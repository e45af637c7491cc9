"""Server-sent events for streamed answers (sse-starlette): shared by /v1/ask and the OpenAI route.

The retrieval and packing run before the response starts, so their errors are ordinary 4xx/5xx
replies. Once streaming, an error becomes a last ``error`` event. A client that goes away
cancels the generator, which closes the LLM stream and so stops the generation upstream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse

from app.api import metrics
from app.llm.client import LLMError
from app.rag.pipeline import AskPipeline, AskQuery, DoneEvent, StreamEvent, TokenEvent

log = logging.getLogger(__name__)

# A comment line now and then keeps proxies from closing a slow stream.
PING_SECONDS = 15


async def start_stream(events: AsyncIterator[StreamEvent]) -> StreamEvent:
    """The first event (the sources); raises the pipeline's own errors before any byte is sent."""
    return await anext(events)


def sse_response(payloads: AsyncIterator[dict]) -> EventSourceResponse:
    return EventSourceResponse(
        payloads, ping=PING_SECONDS, sep="\n", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def guarded(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent | LLMError]:
    """The events, with metrics; an LLM failure mid-stream is yielded as the last item."""
    try:
        async for event in events:
            if isinstance(event, DoneEvent):
                metrics.observe_answer(event.result)
                if event.time_to_first_token_ms is not None:
                    metrics.TIME_TO_FIRST_TOKEN.observe(event.time_to_first_token_ms / 1000)
            yield event
    except LLMError as exc:
        metrics.observe_llm_error(exc)
        log.error("streamed answer failed: %s", exc)
        yield exc
    except anyio.get_cancelled_exc_class():
        metrics.STREAMS_CANCELLED.inc()
        log.info("client went away; generation stopped")
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await events.aclose()


def data(payload: dict) -> dict:
    return {"data": json.dumps(payload, ensure_ascii=False)}


async def ask_events(first: StreamEvent, events: AsyncIterator) -> AsyncIterator[dict]:
    """/v1/ask with ``stream: true``: ``sources``, then ``token`` events, then ``done``
    (usage and timings) or ``error``."""
    from app.api.schemas import AskResponse, Source

    sources = [s.model_dump() for s in Source.of(first.passages)]
    yield {"event": "sources", **data({"sources": sources, "passages_dropped": first.passages_dropped})}
    async for event in events:
        if isinstance(event, TokenEvent):
            yield {"event": "token", **data({"text": event.text})}
        elif isinstance(event, DoneEvent):
            # The whole response but the sources (sent first); its answer replaces the streamed
            # text when the grounding stage quoted or refused instead (answer_source).
            done = AskResponse.from_result(event.result).model_dump(mode="json", exclude={"sources"})
            done["finish_reason"] = event.result.finish_reason
            done["timings_ms"]["first_token"] = event.time_to_first_token_ms
            yield {"event": "done", **data(done)}
        elif isinstance(event, LLMError):
            yield {"event": "error", **data({"detail": str(event)})}


async def stream_ask(pipeline: AskPipeline, query: AskQuery) -> EventSourceResponse:
    events = guarded(pipeline.stream(query))
    first = await start_stream(events)
    return sse_response(ask_events(first, events))
