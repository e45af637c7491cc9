"""Typed dependencies for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.api.services import Services
from app.core.config import Settings
from app.rag.pipeline import AskPipeline

# The dependencies are coroutines although nothing in them waits: FastAPI runs a plain function
# dependency in its thread pool, three thread hops per request for three attribute reads.


async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_pipeline(services: ServicesDep) -> AskPipeline:
    return services.pipeline


SettingsDep = Annotated[Settings, Depends(get_settings)]
AskPipelineDep = Annotated[AskPipeline, Depends(get_pipeline)]


READ_ONLY_REFUSAL = (
    "this ragqa replica serves its index read-only (RAGQA_READ_ONLY=true): documents are added and "
    "removed by the ingest job (`ragqa ingest FOLDER --collection NAME`), whose new version every "
    "replica picks up by itself"
)


async def require_writable_index(settings: SettingsDep) -> None:
    """For the routes that write the index: a read-only replica refuses them before any work."""
    if settings.read_only:
        raise HTTPException(403, READ_ONLY_REFUSAL)


# Route dependency (``dependencies=[WritableIndex]``) of every route that writes the index,
# and the refusal its OpenAPI entry lists (``responses=WRITE_REFUSED``).
WritableIndex = Depends(require_writable_index)
WRITE_REFUSED: dict[int | str, dict] = {
    403: {"description": "this replica serves its index read-only (RAGQA_READ_ONLY)"}
}
