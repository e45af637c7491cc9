"""Writing to collections one document at a time: uploads and deletes, as the REST API offers them.

Uploads are copied to a private temporary folder under sanitised names and then go through
``IngestJob.add_files``: the same loaders, splitter, vector reuse, writer lock and atomic
version swap as `ragqa ingest`.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.core.store import CollectionBusy, Manifest, validate_collection_name
from ingest.run import IngestJob, IngestSummary

_COPY_BLOCK = 1 << 20
MAX_NAME_CHARS = 255
# How long an API write waits for a collection's lock held by another process (a CLI ingest),
# before its 409. Writes from this process queue behind each other; once one of them found the
# lock busy, those queued behind it try once and answer at once, instead of 2 s each in turn.
WRITER_LOCK_WAIT_S = 2.0


class UploadRejected(ValueError):
    """The upload as a whole is refused (a bad file name, too many files)."""


class UploadTooLarge(UploadRejected):
    pass


def sanitize_upload_name(name: str | None) -> str:
    """The document name for an uploaded file: its base name only, never a path.

    Directories (``../``, absolute paths, Windows ``C:\\``) are dropped; names that stay empty,
    hidden or that hold control characters are refused. Unicode (Korean) names are kept.
    """
    original = name or ""
    base = unicodedata.normalize("NFC", original).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", "..") or base.startswith("."):
        raise UploadRejected(f"unusable file name {original!r}: give the file a plain name like notes.txt")
    if any(unicodedata.category(ch).startswith("C") for ch in base):
        raise UploadRejected(f"file name {original!r} contains control characters")
    if len(base.encode("utf-8")) > MAX_NAME_CHARS:
        raise UploadRejected(f"file name {original!r} is longer than {MAX_NAME_CHARS} bytes")
    return base


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str  # as the client sent it
    doc: str  # the document name it is stored under


class DocumentService:
    def __init__(self, job: IngestJob, max_bytes: int, max_files: int):
        self.job = job
        self.store = job.store
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._busy_until: dict[str, float] = {}  # collection -> when its lock was last found busy, + the wait

    @contextlib.contextmanager
    def _writing(self, collection: str):
        """This process's writers to one collection take turns (concurrent uploads all land);
        a lock held by another process is waited for at most WRITER_LOCK_WAIT_S."""
        with self._locks_guard:
            lock = self._locks.setdefault(collection, threading.Lock())
        with lock:
            recently_busy = time.monotonic() < self._busy_until.get(collection, 0.0)
            try:
                with self.store.lock_wait(0.0 if recently_busy else WRITER_LOCK_WAIT_S):
                    yield
            except CollectionBusy:
                self._busy_until[collection] = time.monotonic() + WRITER_LOCK_WAIT_S
                raise

    def upload(
        self, collection: str, files: list[tuple[str | None, BinaryIO]]
    ) -> tuple[list[UploadedFile], IngestSummary]:
        """Add or replace these files in ``collection`` (created if new). Blocking: run in a thread."""
        validate_collection_name(collection)
        if not files:
            raise UploadRejected("no files in the upload: send them as multipart field 'files'")
        if len(files) > self.max_files:
            raise UploadRejected(f"{len(files)} files in one upload; the limit is {self.max_files}")
        names = [sanitize_upload_name(name) for name, _ in files]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UploadRejected(f"the upload holds several files named {', '.join(map(repr, duplicates))}")
        with tempfile.TemporaryDirectory(prefix="ragqa-upload-") as tmp:
            paths = []
            for (original, stream), doc in zip(files, names):
                path = Path(tmp) / doc
                self._copy_capped(stream, path, original or doc)
                paths.append((doc, path))
            with self._writing(collection):
                summary = self.job.add_files(collection, paths)
        if summary.skipped and not (summary.added or summary.updated or summary.unchanged):
            reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in summary.skipped)
            raise UploadRejected(f"no uploaded file could be ingested: {reasons}")
        return [UploadedFile(name or "", doc) for (name, _), doc in zip(files, names)], summary

    def _copy_capped(self, stream: BinaryIO, path: Path, shown: str) -> None:
        written = 0
        with open(path, "wb") as out:
            while block := stream.read(_COPY_BLOCK):
                written += len(block)
                if written > self.max_bytes:
                    raise UploadTooLarge(
                        f"{shown!r} is larger than the upload limit of {self.max_bytes} bytes "
                        "(RAGQA_UPLOAD_MAX_BYTES)"
                    )
                out.write(block)

    def delete_document(self, collection: str, doc: str) -> IngestSummary:
        with self._writing(collection):
            return self.job.remove_documents(collection, [doc])

    def delete_collection(self, collection: str) -> None:
        with self._writing(collection):
            self.store.delete(collection)

    def manifest(self, collection: str) -> Manifest:
        return self.store.read_manifest(collection)

