from __future__ import annotations

import time

from fastapi import APIRouter

from app.api import metrics
from app.api.deps import AskPipelineDep, SettingsDep
from app.api.schemas import AskRequest, AskResponse, RetrieveRequest, RetrieveResponse, Source
from app.api.streaming import stream_ask

router = APIRouter(prefix="/v1", tags=["ask"])


@router.post("/ask", response_model=AskResponse)
async def ask(body: AskRequest, pipeline: AskPipelineDep, settings: SettingsDep) -> AskResponse:
    """Answer a question from the collection's documents, with the passages behind the answer.
    With ``stream: true``, server-sent events: ``sources``, ``token``..., then ``done``."""
    query = body.to_query(settings)
    if body.stream:
        return await stream_ask(pipeline, query)
    result = await pipeline.run(query)
    metrics.observe_answer(result)
    return AskResponse.from_result(result)


@router.post("/retrieve", response_model=RetrieveResponse)
async def retrieve(
    body: RetrieveRequest, pipeline: AskPipelineDep, settings: SettingsDep
) -> RetrieveResponse:
    """The passages most similar to the question, without asking the LLM."""
    started = time.perf_counter()
    passages = await pipeline.retrieve(
        body.question, body.collection, body.top_k or settings.top_k, body.retrieval_options(settings)
    )
    metrics.observe_retrieval(time.perf_counter() - started)
    return RetrieveResponse(passages=Source.of(passages))
