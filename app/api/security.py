"""API keys and per-key rate limits for the /v1 routes, as one ASGI middleware.

Rate limiting is the `limits` library's moving window, in memory: one process, one budget (so
with `ragqa serve --workers N` each worker has its own, README).
/healthz, /readyz and the web page stay open; /metrics too, unless RAGQA_METRICS_REQUIRE_KEY
(its series name collections).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_content

PROTECTED_PREFIX = "/v1/"


def key_fingerprint(key: str) -> str:
    """What logs and limits name a key by: never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class ApiKeyAndRateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, api_keys: list[str], rate_limit: str, metrics_require_key: bool = False
    ):
        self.app = app
        self.protected = (PROTECTED_PREFIX, "/metrics") if metrics_require_key else (PROTECTED_PREFIX,)
        self.api_keys = [k.encode() for k in api_keys]
        self.limits: list[RateLimitItem] = parse_many(rate_limit) if rate_limit else []
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def _known_key(self, presented: str) -> bool:
        given = presented.encode()
        # Compare with every key, in constant time, so timing tells nothing about them.
        return any([hmac.compare_digest(given, key) for key in self.api_keys])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.protected):
            await self.app(scope, receive, send)
            return
        client = f"ip:{scope['client'][0]}" if scope.get("client") else "ip:unknown"
        if self.api_keys:
            scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                await self._unauthorized(scope, receive, send, "missing API key: send the header 'Authorization: Bearer <key>'")
                return
            if not self._known_key(token.strip()):
                await self._unauthorized(scope, receive, send, "invalid API key")
                return
            client = f"key:{key_fingerprint(token.strip())}"
        scope.setdefault("state", {})["client_id"] = client
        for item in self.limits:
            if not self.limiter.hit(item, client):
                reset_at = self.limiter.get_window_stats(item, client).reset_time
                retry_after = max(1, math.ceil(reset_at - time.time()))
                response = JSONResponse(
                    error_content(
                        scope["path"], 429, f"rate limit of {item} exceeded; retry in {retry_after} s"
                    ),
                    status_code=429,
                    headers={"Retry-After": str(retry_after)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _unauthorized(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        response = JSONResponse(
            error_content(scope["path"], 401, message),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


# Part headers and boundaries a multipart file part may carry besides the file itself.
PART_OVERHEAD_BYTES = 64 * 1024


class _PartCounter:
    """The size of the multipart part being received, from the boundaries in the raw stream:
    a file over the per-file cap is refused as it arrives, before it fills the temp folder."""

    def __init__(self, boundary: bytes):
        self.delimiter = b"\r\n--" + boundary
        self.tail = b""
        self.part = 0  # bytes of the current part so far

    def feed(self, body: bytes) -> int:
        """Takes the next body bytes; returns the largest part size seen in them."""
        buf = self.tail + body
        base = max(0, self.part - len(self.tail))  # the current part's bytes before buf
        biggest, pos = 0, 0
        while (at := buf.find(self.delimiter, pos)) >= 0:
            biggest = max(biggest, base + at - pos)
            base, pos = 0, at + len(self.delimiter)
        self.part = base + len(buf) - pos
        self.tail = buf[-(len(self.delimiter) - 1) :]
        return max(biggest, self.part)


def _boundary(content_type: str) -> bytes | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value.strip('"'):
            return value.strip('"').encode("latin-1", "replace")
    return None


class BodySizeLimitMiddleware:
    """413 for bodies over the cap: by Content-Length up front, or counted as they arrive;
    and, for uploads, for any one file part over ``max_part_bytes`` as soon as it exceeds it."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int, max_part_bytes: int | None = None
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_part_bytes = max_part_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        is_upload = headers.get("content-type", "").startswith("multipart/form-data")
        cap = self.max_upload_bytes if is_upload else self.max_body_bytes
        what = "upload" if is_upload else "request body"
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > cap:
            await self._too_large(scope, receive, send, what, cap)
            return

        received = 0
        refused = False  # a 413 went out: whatever the app answers after is dropped
        boundary = _boundary(headers.get("content-type", "")) if is_upload else None
        parts = _PartCounter(boundary) if boundary and self.max_part_bytes else None

        async def counting_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # Answer now: the app's body parser would turn an exception into a 400.
                    refused = True
                    await self._too_large(scope, receive, send, what, cap)
                    return {"type": "http.disconnect"}
                if parts is not None and parts.feed(message.get("body", b"")) > self.max_part_bytes:
                    refused = True
                    limit = self.max_part_bytes - PART_OVERHEAD_BYTES
                    await self._too_large(scope, receive, send, "a file in the upload", limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    @staticmethod
    async def _too_large(scope, receive, send, what: str, cap: int) -> None:
        response = JSONResponse(
            error_content(scope["path"], 413, f"{what} larger than the limit of {cap} bytes"), status_code=413
        )
        await response(scope, receive, send)
