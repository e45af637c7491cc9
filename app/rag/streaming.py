"""The streamed answer's events, kept importable from here; the steps are ``AskPipeline.stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.rag.pipeline import AskPipeline, AskQuery, DoneEvent, SourcesEvent, StreamEvent, TokenEvent

__all__ = ["DoneEvent", "SourcesEvent", "StreamEvent", "TokenEvent", "stream_answer"]


def stream_answer(pipeline: AskPipeline, query: AskQuery) -> AsyncIterator[StreamEvent]:
    """Same as ``pipeline.stream(query)``."""
    return pipeline.stream(query)
