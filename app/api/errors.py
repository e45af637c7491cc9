"""Domain errors to HTTP statuses, always as ``{"detail": "..."}`` with a clear message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.metrics import observe_llm_error
from app.core.lexical import LexicalIndexMissing
from app.core.store import (
    CollectionNotFound,
    CorruptCollection,
    DocumentNotFound,
    InvalidCollectionName,
)
from app.llm.client import LLMError, LLMTimeout, LLMUnavailable, UnknownAdapter
from app.rag.packing import PromptTooLong
from app.rag.retrieval import EmbeddingModelMismatch
from ingest.documents import UploadRejected, UploadTooLarge
from ingest.run import IngestError

log = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (CollectionNotFound, 404),
    (DocumentNotFound, 404),
    (UploadTooLarge, 413),
    (UploadRejected, 422),
    (IngestError, 409),
    (InvalidCollectionName, 422),
    (PromptTooLong, 422),
    (UnknownAdapter, 422),
    (EmbeddingModelMismatch, 409),
    (LexicalIndexMissing, 409),
    (LLMTimeout, 504),
    (LLMUnavailable, 503),
    (LLMError, 502),
    (CorruptCollection, 500),
]


def register_exception_handlers(app: FastAPI) -> None:
    for error_type, status in STATUS_BY_ERROR:

        async def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            observe_llm_error(exc)
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.url.path, exc)
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(error_type, handler)
