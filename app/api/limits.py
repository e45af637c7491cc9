"""Refuse oversized uploads from their Content-Length, before the body is read and spooled to disk."""

from __future__ import annotations

import json
import re

UPLOAD_PATH = re.compile(r"^/v1/collections/[^/]+/documents/?$")
# Multipart boundaries and part headers on top of the files themselves.
MULTIPART_OVERHEAD = 1024 * 1024


class UploadSizeLimit:
    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and UPLOAD_PATH.match(scope["path"]):
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                body = json.dumps(
                    {"detail": f"upload of {int(length)} bytes is over the limit of {self.max_body_bytes} "
                               "bytes (RAGQA_UPLOAD_MAX_BYTES x RAGQA_UPLOAD_MAX_FILES)"}  # fmt: skip
                ).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
