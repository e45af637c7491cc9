from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.api.schemas import Health, Readiness
from app.core.store import StoreError
from app.llm.embedded import supervisor_status

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz() -> JSONResponse:
    """The process is alive. A dead embedded LLM is restarted by its supervisor, so it is not
    a reason to restart the service, until the supervisor gives up: then 503, and a liveness
    probe restarts the whole service (docs/reliability.md)."""
    llm = supervisor_status()
    if llm is not None and llm["state"] == "failed":
        detail = f"the embedded LLM could not be restarted ({llm['failed_restarts']} attempts in a row)"
        return JSONResponse(Health(status="failing", detail=detail).model_dump(), status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when the LLM answers and every collection loads; 503 with the problems otherwise."""
    problems: list[str] = []
    index_dir = services.settings.index_dir
    read_only = services.settings.read_only  # a read-only mount is what such a replica expects
    if not read_only and index_dir.exists() and not os.access(index_dir, os.W_OK | os.X_OK):
        # e.g. a host folder mounted into a container whose uid does not own it
        problems.append(
            f"the index folder {index_dir} is not writable by uid {os.getuid()}: chown it or use a named volume"
        )
    names = services.store.list_collections()
    if not names:
        problems.append(f"no collection in {services.settings.index_dir}: run `ragqa ingest`")
    for name in names:
        try:
            await run_in_threadpool(services.collections.get, name)
        except StoreError as exc:
            problems.append(str(exc))
    llm_ok = await services.llm.is_ready()
    llm_process = supervisor_status()
    if llm_process is not None and llm_process["state"] != "running":
        last = llm_process["last_exit"] or {}
        problems.append(
            f"the embedded LLM is {llm_process['state']}: it exited with {last.get('returncode')}; "
            f"restarts so far {llm_process['restarts']}"
        )
    elif not llm_ok:
        problems.append(f"the LLM at {services.llm.base_url} is not reachable")
    private = bool(services.settings.api_keys)  # /readyz is open: with keys set, name nothing
    if private:
        problems = [f"{len(problems)} problem(s): see the service's log"] if problems else []
    body = Readiness(
        status="ready" if not problems else "not ready",
        llm="reachable" if llm_ok else "unreachable",
        llm_base_url="" if private else services.llm.base_url,
        collections=[] if private else names,
        problems=problems,
        llm_process=llm_process,
    )
    return JSONResponse(body.model_dump(), status_code=200 if not problems else 503)
