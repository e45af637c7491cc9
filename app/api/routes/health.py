from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.api.schemas import Health, Readiness
from app.core.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when the LLM answers and every collection loads; 503 with the problems otherwise."""
    problems: list[str] = []
    index_dir = services.settings.index_dir
    if index_dir.exists() and not os.access(index_dir, os.W_OK | os.X_OK):
        # e.g. a host folder mounted into a container whose uid does not own it
        problems.append(f"the index folder {index_dir} is not writable by uid {os.getuid()}: chown it or use a named volume")
    names = services.store.list_collections()
    if not names:
        problems.append(f"no collection in {services.settings.index_dir}: run `ragqa ingest`")
    for name in names:
        try:
            await run_in_threadpool(services.collections.get, name)
        except StoreError as exc:
            problems.append(str(exc))
    llm_ok = await services.llm.is_ready()
    if not llm_ok:
        problems.append(f"the LLM at {services.llm.base_url} is not reachable")
    body = Readiness(
        status="ready" if not problems else "not ready",
        llm="reachable" if llm_ok else "unreachable",
        llm_base_url=services.llm.base_url,
        collections=names,
        problems=problems,
    )
    return JSONResponse(body.model_dump(), status_code=200 if not problems else 503)
