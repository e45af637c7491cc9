"""Failure 9: an oversized upload is refused while it streams in, not after it was spooled."""

from __future__ import annotations

import asyncio

from app.api.security import PART_OVERHEAD_BYTES, BodySizeLimitMiddleware

MB = 1024 * 1024
BOUNDARY = b"----ragqa-test-boundary"


def multipart(file_bytes: int) -> bytes:
    head = (
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    return head + b"a" * file_bytes + b"\r\n--" + BOUNDARY + b"--\r\n"


def run_upload(body: bytes, max_part_bytes: int, chunk: int = 64 * 1024) -> tuple[int, int]:
    """(status, bytes the app behind the middleware received) for one streamed upload."""
    seen = {"bytes": 0}

    async def app(scope, receive, send):  # spools everything, like the multipart parser
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            seen["bytes"] += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = BodySizeLimitMiddleware(
        app, max_body_bytes=MB, max_upload_bytes=400 * MB, max_part_bytes=max_part_bytes
    )
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    sent: list[dict] = []

    async def receive():
        if chunks:
            data = chunks.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/collections/c/documents",
        "headers": [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)],
    }
    asyncio.run(middleware(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, seen["bytes"]


def test_an_oversized_file_is_refused_while_streaming():
    cap = 2 * MB + PART_OVERHEAD_BYTES  # a 2 MB per-file limit
    status, spooled = run_upload(multipart(30 * MB), cap)
    assert status == 413
    assert spooled <= cap + 128 * 1024, f"{spooled} bytes reached the app before the 413"


def test_a_file_under_the_cap_passes():
    status, spooled = run_upload(multipart(MB), 2 * MB + PART_OVERHEAD_BYTES)
    assert status == 200 and spooled > MB


def test_the_boundary_is_found_across_chunk_edges():
    body = multipart(3 * MB // 2) + b""  # two parts below: the counter resets at each boundary
    two = body.replace(b"\r\n--" + BOUNDARY + b"--\r\n", b"\r\n") + multipart(3 * MB // 2)[0:]
    status, _ = run_upload(two, 2 * MB + PART_OVERHEAD_BYTES, chunk=4099)
    assert status == 200


def test_the_app_refuses_by_content_length_and_per_file(make_client):
    client = make_client(upload_max_bytes=MB)
    files = [("files", ("big.txt", b"a" * (3 * MB), "text/plain"))]
    response = client.post("/v1/collections/default/documents", files=files)
    assert response.status_code == 413
    assert "file in the upload" in response.json()["detail"]
