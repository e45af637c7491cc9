"""Per-request context: a request id (in the logs and the X-Request-ID header), an access log
line, and the latency histogram by route template and status."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import metrics
from app.api.logs import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's own id is kept if it is short and plain; anything else is replaced.
_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
access_log = logging.getLogger("ragqa.access")
# On every reply: no framing (clickjacking), no MIME sniffing, no referrer to other sites.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# The page loads only its own script and style; the map is a blob: image; /docs is not covered
# (FastAPI's Swagger UI loads from a CDN and inline script), it gets the headers above only.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics_enabled: bool = True):
        self.app = app
        self.metrics_enabled = metrics_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _ACCEPTABLE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", PAGE_CSP)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            # The template (/v1/collections/{name}/map.png), never the raw path: bounded labels.
            template = getattr(route, "path", None) or "unmatched"
            if self.metrics_enabled:
                metrics.HTTP_LATENCY.labels(template, scope["method"], str(status)).observe(elapsed)
            access_log.info(
                "%s %s %s", scope["method"], scope["path"], status,
                extra={
                    "method": scope["method"], "path": scope["path"], "route": template,
                    "status": status, "duration_ms": round(elapsed * 1000, 1),
                    "client": scope.get("state", {}).get("client_id"),
                },
            )  # fmt: skip
            request_id_var.reset(token)


OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                429: "rate_limit_error"}  # fmt: skip


def openai_error_type(status: int) -> str:
    """OpenAI's error type for a status: any other 4xx is the request's fault, not the server's."""
    return _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


class OpenAIErrorMiddleware:
    """On the OpenAI routes, error bodies also carry OpenAI's ``{"error": {"message", ...}}``
    next to ``detail``: OpenAI clients show only ``error.message`` to their users."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(OPENAI_PATHS):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def reshape(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if message["status"] >= 400 and content_type.startswith("application/json"):
                    start = message  # hold it until the whole body is here
                    return
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await send_reshaped(start, b"".join(chunks))
                return
            await send(message)

        async def send_reshaped(start_message: Message, body: bytes) -> None:
            status = start_message["status"]
            try:
                payload = json.loads(body)
                detail = payload.get("detail")
                text = detail if isinstance(detail, str) else "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail or []
                )
                payload["error"] = {
                    "message": text, "type": openai_error_type(status), "code": status,
                }  # fmt: skip
                body = json.dumps(payload, ensure_ascii=False).encode()
            except (ValueError, AttributeError, TypeError):
                pass  # not ours to reshape: pass it on as it is
            headers = MutableHeaders(raw=list(start_message.get("headers", [])))
            headers["content-length"] = str(len(body))
            await send({**start_message, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshape)
