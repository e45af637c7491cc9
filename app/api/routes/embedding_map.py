"""The embedding map of a collection: a PNG, or the points as JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.api.schemas import MAX_QUESTION_CHARS, CollectionName
from app.viz.embedding_map import MapCache

router = APIRouter(prefix="/v1/collections", tags=["collections"])

QuestionParam = Annotated[
    str | None,
    Query(min_length=1, max_length=MAX_QUESTION_CHARS, description="ring the chunks retrieved for it"),
]


async def get_map_cache(request: Request) -> MapCache:
    return request.app.state.map_cache


MapCacheDep = Annotated[MapCache, Depends(get_map_cache)]


@router.get(
    "/{name}/map.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "t-SNE map of the chunk embeddings"}},
)
async def map_png(
    name: CollectionName,
    services: ServicesDep,
    cache: MapCacheDep,
    question: QuestionParam = None,
    top_k: Annotated[int | None, Query(ge=1, le=50)] = None,
) -> Response:
    """t-SNE projection of the chunk embeddings, coloured by document; near-duplicates and
    outliers marked; with ``question``, the retrieved chunks starred by rank."""
    index = await run_in_threadpool(services.collections.get, name)
    highlighted = None
    if question:
        passages = await services.pipeline.retrieve(question, name, top_k or services.settings.top_k)
        highlighted = [p.id for p in passages]
    image, hit = await run_in_threadpool(cache.png, index, highlighted, question)
    return Response(
        image,
        media_type="image/png",
        headers={"X-Map-Cache": "hit" if hit else "miss", "X-Collection-Version": index.version},
    )


@router.get("/{name}/map")
async def map_points(name: CollectionName, services: ServicesDep, cache: MapCacheDep) -> dict:
    """The projected points: id, doc, x, y, near_duplicate, outlier."""
    index = await run_in_threadpool(services.collections.get, name)
    projection, hit = await run_in_threadpool(cache.projection, index)
    return {
        "collection": name,
        "version": index.version,
        "total_chunks": projection.total_chunks,
        "sampled": projection.sampled,
        "cached": hit,
        "points": projection.points(),
    }
