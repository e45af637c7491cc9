"""The FastAPI application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api.errors import document_errors, register_exception_handlers
from app.api.middleware import RequestContextMiddleware
from app.api.routes import adapters, ask, collections, embedding_map, health, metrics, openai, web
from app.api.security import PART_OVERHEAD_BYTES, ApiKeyAndRateLimitMiddleware, BodySizeLimitMiddleware
from app.api.services import Services
from app.core.config import Settings, get_settings
from app.viz.embedding_map import MapCache


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """The app over ``services`` if given (the caller keeps and closes them), else over
    services built from ``settings`` at start-up and closed at shutdown."""
    settings = settings or (services.settings if services else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.services = services or Services.build(settings)
        app.state.map_cache = MapCache(settings.map_max_points)
        try:
            yield
        finally:
            if services is None:
                await app.state.services.aclose()

    app = FastAPI(
        title="ragqa",
        summary="Answers questions from your own documents, with sources, over REST.",
        version="0.1.0",
        lifespan=lifespan,
    )
    register_exception_handlers(app)
    document_errors(app, api_keys=bool(settings.api_keys))
    app.include_router(ask.router)
    app.include_router(adapters.router)
    app.include_router(collections.router)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(embedding_map.router)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    add_middleware(app, settings)
    return app


def add_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost last: the request id and metrics see every reply, 401s and 413s included;
    CORS answers preflights before the key check and adds its headers to refusals too."""
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.upload_request_max_bytes,
        max_part_bytes=settings.upload_max_bytes + PART_OVERHEAD_BYTES,
    )
    app.add_middleware(
        ApiKeyAndRateLimitMiddleware,
        api_keys=settings.api_keys,
        rate_limit=settings.rate_limit,
        metrics_require_key=settings.metrics_require_key,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, metrics_enabled=settings.metrics_enabled)
