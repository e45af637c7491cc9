from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, File, Path, UploadFile
from starlette.concurrency import run_in_threadpool

from app.api.deps import WRITE_REFUSED, ServicesDep, WritableIndex
from app.api.schemas import (
    CollectionDeleted,
    CollectionInfo,
    CollectionsResponse,
    DocumentInfo,
    DocumentsResponse,
    UploadResponse,
    WriteSummary,
)
from app.core.store import COLLECTION_NAME_PATTERN, StoreError

log = logging.getLogger(__name__)


def broken_collection(name: str) -> CollectionInfo:
    return CollectionInfo(
        name=name,
        documents=0,
        chunks=0,
        embedding_model="",
        version="",
        created_at="",
        status="broken",
        problem="its manifest cannot be read: re-ingest it or delete it",
    )


router = APIRouter(prefix="/v1", tags=["collections"])

# Writers (uploads, deletes) run on threads of their own: one that waits for a collection's
# lock must never hold a thread of the shared pool that retrievals and answers need.
WRITER_THREADS = 4
_writers = ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="ragqa-writer")


async def run_writer(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_writers, functools.partial(fn, *args))


CollectionPath = Annotated[str, Path(pattern=COLLECTION_NAME_PATTERN, description="collection name")]


@router.get("/collections", response_model=CollectionsResponse)
async def list_collections(services: ServicesDep) -> CollectionsResponse:
    def describe() -> list[CollectionInfo]:
        infos = []
        for name in services.store.list_collections():
            try:
                manifest = services.store.read_manifest(name)
            except (StoreError, OSError) as exc:
                # One broken collection must not hide the healthy ones (nor break the page).
                log.error("collection %r cannot be listed: %s", name, exc)
                infos.append(broken_collection(name))
                continue
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


@router.delete(
    "/collections/{name}",
    response_model=CollectionDeleted,
    dependencies=[WritableIndex],
    responses=WRITE_REFUSED,
)
async def delete_collection(name: CollectionPath, services: ServicesDep) -> CollectionDeleted:
    """Delete a collection and all its versions. Queries already running finish on the old data."""
    await run_writer(services.documents.delete_collection, name)
    return CollectionDeleted(collection=name)


@router.get("/collections/{name}/documents", response_model=DocumentsResponse)
async def list_documents(name: CollectionPath, services: ServicesDep) -> DocumentsResponse:
    manifest = await run_in_threadpool(services.documents.manifest, name)
    return DocumentsResponse(
        collection=name,
        version=manifest.version,
        documents=[
            DocumentInfo(doc=doc, sha256=e.sha256, chunks=len(e.chunk_ids), chars=e.chars)
            for doc, e in sorted(manifest.documents.items())
        ],
    )


@router.post(
    "/collections/{name}/documents",
    response_model=UploadResponse,
    dependencies=[WritableIndex],
    responses=WRITE_REFUSED,
)
async def upload_documents(
    name: CollectionPath,
    files: Annotated[list[UploadFile], File(description="one or more .txt .md .html .pdf .docx files")],
    services: ServicesDep,
) -> UploadResponse:
    """Add or replace documents (creating the collection if new); the new version goes live at once."""
    stored, summary = await run_writer(services.documents.upload, name, [(f.filename, f.file) for f in files])
    return UploadResponse(
        files=[{"filename": s.filename, "doc": s.doc} for s in stored],
        summary=WriteSummary.model_validate(summary.to_dict()),
    )


@router.delete(
    "/collections/{name}/documents/{doc:path}",
    response_model=WriteSummary,
    dependencies=[WritableIndex],
    responses=WRITE_REFUSED,
)
async def delete_document(name: CollectionPath, doc: str, services: ServicesDep) -> WriteSummary:
    """Remove one document's chunks; it stops being retrieved as soon as this returns."""
    summary = await run_writer(services.documents.delete_document, name, doc)
    return WriteSummary.model_validate(summary.to_dict())
