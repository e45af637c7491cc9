"""Per-request context: a request id (in the logs and the X-Request-ID header), an access log
line, and the latency histogram by route template and status."""

from __future__ import annotations

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
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "client": scope.get("state", {}).get("client_id"),
                },
            )
            request_id_var.reset(token)
