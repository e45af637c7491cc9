"""Document loaders: one function per format, all returning plain text or raising SkipDocument."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

MAX_FILE_BYTES = 50 * 1024 * 1024


class SkipDocument(Exception):
    """A file that is not ingested; the message is the reason shown in the summary."""


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise SkipDocument("binary content (NUL bytes)")
    # utf-8-sig also accepts plain UTF-8 and drops a BOM.
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise SkipDocument("not decodable as UTF-8 or CP949 text")


def load_text(path: Path) -> str:
    return _decode_text(path.read_bytes())


LOADERS: dict[str, Callable[[Path], str]] = {
    ".txt": load_text,
    ".md": load_text,
}


def load_document(path: Path) -> str:
    """The document's text; SkipDocument with a reason if it cannot or should not be ingested."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise SkipDocument(f"unsupported file type {path.suffix or '(none)'!r}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SkipDocument(f"unreadable: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise SkipDocument(f"too large: {size} bytes (limit {MAX_FILE_BYTES})")
    try:
        text = loader(path)
    except SkipDocument:
        raise
    except OSError as exc:
        raise SkipDocument(f"unreadable: {exc.strerror or exc}") from exc
    if not text.strip():
        raise SkipDocument("empty")
    return text
