"""The FastAPI application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.errors import register_exception_handlers
from app.api.limits import MULTIPART_OVERHEAD, UploadSizeLimit
from app.api.routes import adapters, ask, collections, health
from app.api.services import Services
from app.core.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.services = Services.build(settings)
        try:
            yield
        finally:
            await app.state.services.aclose()

    app = FastAPI(
        title="ragqa",
        summary="Answers questions from your own documents, with sources, over REST.",
        version="0.1.0",
        lifespan=lifespan,
    )
    register_exception_handlers(app)
    app.add_middleware(
        UploadSizeLimit,
        max_body_bytes=settings.upload_max_bytes * settings.upload_max_files + MULTIPART_OVERHEAD,
    )
    app.include_router(ask.router)
    app.include_router(adapters.router)
    app.include_router(collections.router)
    app.include_router(health.router)
    return app
