from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from app.api import metrics
from app.api.deps import ServicesDep
from app.core.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(services: ServicesDep) -> Response:
    """Prometheus text format; open, like /healthz, for the scraper."""

    def chunk_counts() -> dict[str, int]:
        counts = {}
        for name in services.store.list_collections():
            try:
                counts[name] = services.store.read_manifest(name).chunk_count
            except StoreError:
                continue  # a broken collection shows in /readyz, not here
        return counts

    counts = await run_in_threadpool(chunk_counts)
    return Response(await run_in_threadpool(metrics.exposition, counts), media_type=CONTENT_TYPE_LATEST)
