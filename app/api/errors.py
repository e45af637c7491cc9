"""Domain errors to HTTP statuses, always as ``{"detail": "..."}`` with a clear message.

On the OpenAI-compatible routes (app/api/routes/openai.py) every error body also carries
OpenAI's ``{"error": {"message", "type", "code"}}`` next to ``detail``: OpenAI clients show
only ``error.message`` to their users. The handlers here build it, as do the refusals of the
security middleware (401, 413, 429), which answer before any handler runs.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.metrics import observe_llm_error
from app.core.lexical import LexicalIndexMissing
from app.core.store import (
    CollectionBusy,
    CollectionNotFound,
    CorruptCollection,
    DocumentNotFound,
    InvalidCollectionName,
)
from app.llm.client import ContextOverflow, LLMError, LLMTimeout, LLMUnavailable, UnknownAdapter
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
    (CollectionBusy, 409),
    (InvalidCollectionName, 422),
    (PromptTooLong, 422),
    (UnknownAdapter, 422),
    (ContextOverflow, 422),
    (EmbeddingModelMismatch, 409),
    (LexicalIndexMissing, 409),
    (LLMTimeout, 504),
    (LLMUnavailable, 503),
    (LLMError, 502),
    (CorruptCollection, 500),
]


# The paths of the OpenAI router (app/api/routes/openai.py), unknown sub-paths included.
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
_OPENAI_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def openai_error_type(status: int) -> str:
    """OpenAI's error type for a status: any other 4xx is the request's fault, not the server's."""
    return _OPENAI_ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def _error_text(detail) -> str:
    """``detail`` as one line: a validation error list as ``field: message; ...``."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}"
            if isinstance(e, dict)
            else str(e)
            for e in detail
        )
    return str(detail)


def error_content(path: str, status: int, detail) -> dict:
    """An error body: ``{"detail": ...}``, plus OpenAI's error object on the OpenAI routes."""
    content: dict = {"detail": detail}
    if path.startswith(OPENAI_PATHS):
        content["error"] = {"message": _error_text(detail), "type": openai_error_type(status), "code": status}
    return content


def error_response(
    request: Request, status: int, detail, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_content(request.url.path, status, detail), status_code=status, headers=headers)


# The longest input value a 422 echoes back; longer ones are cut.
_MAX_ECHO_CHARS = 200


def _safe_value(value, depth: int = 0):
    """A JSON-safe copy of ``value`` for an error body: NaN and infinities as strings, lone
    surrogates replaced, long strings and deep or large containers cut short."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= _MAX_ECHO_CHARS else text[:_MAX_ECHO_CHARS] + "..."
    if value is None or isinstance(value, (bool, int)):
        return value if not isinstance(value, int) or abs(value) < 1 << 63 else str(value)
    if depth >= 3:
        return "..."
    if isinstance(value, dict):
        return {
            str(_safe_value(k, depth + 1)): _safe_value(v, depth + 1) for k, v in list(value.items())[:20]
        }
    if isinstance(value, (list, tuple)):
        return [_safe_value(v, depth + 1) for v in list(value)[:20]]
    return _safe_value(str(value), depth + 1)


def safe_validation_errors(errors) -> list[dict]:
    """FastAPI's validation errors in a form that always serialises (failures 1 and 2)."""
    safe = []
    for error in errors:
        item = {
            "type": _safe_value(str(error.get("type", "value_error"))),
            "loc": [p if isinstance(p, int) else _safe_value(str(p)) for p in error.get("loc", ())],
            "msg": _safe_value(str(error.get("msg", "invalid value"))),
        }
        if "input" in error:
            item["input"] = _safe_value(error["input"])
        ctx = error.get("ctx")
        if isinstance(ctx, dict):
            item["ctx"] = {
                str(k): _safe_value(v if isinstance(v, (int, float, str)) else str(v)) for k, v in ctx.items()
            }
        safe.append(item)
    return safe


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's usual ``detail`` list, made safe to serialise: the default handler
    echoes the input back and fails (a 500) on NaN, infinities and lone surrogates."""
    try:
        detail = safe_validation_errors(exc.errors())
    except Exception:  # never let the error path itself fail
        log.exception("could not describe a validation error")
        detail = [{"type": "value_error", "loc": ["body"], "msg": "invalid request"}]
    return error_response(request, 422, detail)


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own reply to an HTTPException (an unknown path, a wrong method, ...), in the
    OpenAI shape on the OpenAI routes."""
    if exc.status_code < 400 or not request.url.path.startswith(OPENAI_PATHS):
        return await http_exception_handler(request, exc)
    return error_response(request, exc.status_code, exc.detail, headers=exc.headers)


async def unencodable_text_handler(request: Request, exc: UnicodeError) -> JSONResponse:
    """A safety net for text that reached a reply without being valid Unicode (a lone surrogate
    the request validation did not catch): the client's input, so a 422, not a 500."""
    log.warning("%s %s: unencodable text: %s", request.method, request.url.path, exc)
    return error_response(request, 422, "the request holds invalid Unicode (a lone surrogate)")


def public_message(request: Request, message: str) -> str:
    """An error message as clients see it: the full one goes to the log; the index folder's
    absolute path and the internal LLM URL are not shown to callers."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return message
    index_dir = services.settings.index_dir
    for path in {str(index_dir.resolve()), str(index_dir)}:
        if path not in ("", "."):
            message = message.replace(path, "<indexes>")
    return message.replace(services.llm.base_url, "<llm>")


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(UnicodeEncodeError, unencodable_text_handler)
    for error_type, status in STATUS_BY_ERROR:

        async def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            observe_llm_error(exc)
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.url.path, exc)
            retry_after = getattr(exc, "retry_after_s", None)
            headers = {"Retry-After": str(retry_after)} if retry_after else None
            return error_response(request, status, public_message(request, str(exc)), headers=headers)

        app.add_exception_handler(error_type, handler)


ERROR_MESSAGE_SCHEMA = {
    "title": "ErrorMessage",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}
# The domain errors every /v1 operation may answer with, besides its own.
_DOCUMENTED_ERRORS = {
    "401": "missing or invalid API key",
    "404": "no such collection or document",
    "409": "the collection is being written, or its index does not fit the request",
    "413": "request body or uploaded file too large",
    "429": "rate limit exceeded",
    "502": "the LLM failed",
    "503": "the LLM cannot be reached",
    "504": "the LLM did not answer in time",
}


def document_errors(app: FastAPI, api_keys: bool) -> None:
    """Make the OpenAPI document true about errors: a 422 is either FastAPI's list of
    validation errors or a domain error's ``{"detail": "..."}`` string, and the domain
    statuses are listed. With API keys set, the /v1 operations declare the bearer scheme,
    so /docs can send a key."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["ErrorMessage"] = ERROR_MESSAGE_SCHEMA
        if api_keys:
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        error_ref = {"$ref": "#/components/schemas/ErrorMessage"}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                validation = responses.get("422", {}).get("content", {}).get("application/json", {})
                if "schema" in validation:
                    validation["schema"] = {"anyOf": [validation["schema"], error_ref]}
                elif path.startswith("/v1/"):
                    responses["422"] = {
                        "description": "invalid request",
                        "content": {"application/json": {"schema": error_ref}},
                    }
                # A status a route declares by description alone (a 403 of the writers) has this body.
                for status, response in responses.items():
                    if str(status)[:1] in ("4", "5") and "content" not in response:
                        response["content"] = {"application/json": {"schema": error_ref}}
                if not path.startswith("/v1/"):
                    continue
                for status, description in _DOCUMENTED_ERRORS.items():
                    responses.setdefault(
                        status,
                        {"description": description, "content": {"application/json": {"schema": error_ref}}},
                    )
                if api_keys:
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
