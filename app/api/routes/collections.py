from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.api.schemas import CollectionInfo, CollectionsResponse

router = APIRouter(prefix="/v1", tags=["collections"])


@router.get("/collections", response_model=CollectionsResponse)
async def list_collections(services: ServicesDep) -> CollectionsResponse:
    def describe() -> list[CollectionInfo]:
        infos = []
        for name in services.store.list_collections():
            manifest = services.store.read_manifest(name)
            infos.append(
                CollectionInfo(
                    name=name,
                    documents=len(manifest.documents),
                    chunks=manifest.chunk_count,
                    embedding_model=manifest.embedding.model,
                    version=manifest.version,
                    created_at=manifest.created_at,
                )
            )
        return infos

    return CollectionsResponse(collections=await run_in_threadpool(describe))
