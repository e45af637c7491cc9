"""The on-disk index format: the one module that reads and writes ``indexes/<collection>/``.

Layout of a collection::

    indexes/<collection>/
        CURRENT              name of the live version (replaced atomically)
        .lock                held by a writer (fcntl), so two ingests never interleave
        <version>/
            manifest.json    format version, embedding model, splitter, documents (sha256, chunk ids),
                             FAISS index type and parameters
            index.faiss      chunk id -> normalised vector: flat (exact) or IVF, as the manifest's
                             vector_index says (app/core/vector_index.py)
            chunks.jsonl     one chunk per line: id, doc, start, text (and page, for PDFs;
                             title and section, where known)
            bm25/            the BM25 index over the chunks' indexed texts (app/core/lexical.py)
            sentences/       each chunk's sentence spans and their vectors, float16
                             (app/core/sentence_vectors.py); absent in a version written without

A chunk's *indexed text*, the one embedded and BM25-indexed, is its text behind a short header
(the document's title and the chunk's section) when the manifest's splitter names a header rule;
the passage shown is always the chunk's text alone.

No pickle anywhere: loading a collection never runs code from the index folder.
A write builds a complete new version in a temporary folder, renames it into place and
only then points CURRENT at it, so a crash at any moment leaves the previous version live.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel, Field

from app.core import vector_index
from app.core.lexical import BM25_DIR, LexicalIndex, LexicalIndexMissing
from app.core.sentence_vectors import SENTENCES_DIR, SentenceVectors
from app.core.vector_index import VectorIndexInfo, VectorIndexPolicy

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
FAISS_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
LOCK_FILE = ".lock"
# Versions kept besides the live one, so a reader that just resolved CURRENT can still open it.
KEEP_OLD_VERSIONS = 1

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_COLLECTION_NAME_RE = re.compile(COLLECTION_NAME_PATTERN)


class StoreError(Exception):
    """Base class for index-format errors."""


class CollectionNotFound(StoreError):
    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        listed = ", ".join(known) if known else "none yet: run `ragqa ingest`"
        super().__init__(f"unknown collection {name!r}; known collections: {listed}")


class InvalidCollectionName(StoreError, ValueError):
    pass


class DocumentNotFound(StoreError):
    def __init__(self, collection: str, doc: str):
        self.collection, self.doc = collection, doc
        super().__init__(f"collection {collection!r} has no document {doc!r}")


class CorruptCollection(StoreError):
    pass


class CollectionBusy(StoreError):
    """Another writer holds the collection's lock and this writer does not wait (an upload)."""

    retry_after_s = 5

    def __init__(self, name: str, waited_s: float):
        self.name = name
        super().__init__(
            f"collection {name!r} is being written by another ingest or upload "
            f"(waited {waited_s:.0f} s); retry in {self.retry_after_s} s"
        )


# Per thread: how long writer_lock waits for a busy lock; None waits for as long as it takes
# (the CLI's `ragqa ingest`). The API's writers set a short bound (IndexStore.lock_wait).
_lock_wait = threading.local()


def validate_collection_name(name: str) -> str:
    if not _COLLECTION_NAME_RE.match(name) or ".." in name:
        raise InvalidCollectionName(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    doc: str  # path relative to the ingested folder, POSIX separators
    start: int  # character offset of the chunk in the document's text
    text: str
    page: int | None = None  # 1-based page the chunk starts on, for paged formats (PDF)
    title: str | None = None  # the document's title (ingest/loaders.py says where it comes from)
    section: str | None = None  # the nearest heading above the chunk's start, if the format has headings


# The header rule "title+section": the title, when it is at most TITLE_HEADER_WORDS words, and the
# section, each left out when the chunk already starts with it (a document's first chunk holds its title).
TITLE_SECTION_HEADER = "title+section"
HEADER_RULES = (TITLE_SECTION_HEADER,)
# A longer title is a sentence (a paper's), not a name: in front of every chunk it makes all chunks
# of the document look alike to the embedding model (docs/retrieval.md, "Chunk headers").
TITLE_HEADER_WORDS = 8


def _starts_with(text: str, part: str) -> bool:
    return text.lstrip("# \t\n").startswith(part)


def chunk_header(chunk: Chunk, rule: str | None) -> str:
    """The header put in front of ``chunk``'s text under ``rule`` (None: no header), "" if none."""
    if rule is None:
        return ""
    if rule != TITLE_SECTION_HEADER:
        raise StoreError(f"unknown chunk header rule {rule!r}; this ragqa knows {', '.join(HEADER_RULES)}")
    parts = []
    title = chunk.title
    if title and len(title.split()) <= TITLE_HEADER_WORDS and not _starts_with(chunk.text, title):
        parts.append(title)
    if chunk.section and chunk.section != chunk.title and not _starts_with(chunk.text, chunk.section):
        parts.append(chunk.section)
    return " — ".join(parts)


def indexed_text(chunk: Chunk, rule: str | None) -> str:
    """What is embedded and BM25-indexed for ``chunk``: its header, a blank line, its text."""
    header = chunk_header(chunk, rule)
    return f"{header}\n\n{chunk.text}" if header else chunk.text


class EmbeddingInfo(BaseModel):
    model: str
    dim: int = Field(gt=0)
    normalized: bool = True


class SplitterInfo(BaseModel):
    name: str
    chunk_size: int
    chunk_overlap: int
    # The chunk header rule (HEADER_RULES); None, and absent in manifests written before headers
    # existed: chunks are indexed by their text alone.
    header: str | None = None


class DocumentEntry(BaseModel):
    sha256: str
    chunk_ids: list[int]
    chars: int = 0
    # Letters in the document's text, and how many of them are Hangul: the collection's share
    # picks its embedding model. None in a manifest written before they were recorded.
    letters: int | None = None
    hangul_letters: int | None = None


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    collection: str
    version: str = ""
    created_at: str = ""
    embedding: EmbeddingInfo
    splitter: SplitterInfo
    documents: dict[str, DocumentEntry] = Field(default_factory=dict)
    next_chunk_id: int = 0
    # The FAISS index type and its parameters; absent (flat) in manifests written before IVF.
    vector_index: VectorIndexInfo = Field(default_factory=VectorIndexInfo)

    @property
    def chunk_count(self) -> int:
        return sum(len(d.chunk_ids) for d in self.documents.values())


@dataclass(frozen=True, slots=True)
class SearchHit:
    chunk: Chunk
    score: float


class CollectionIndex:
    """One immutable, fully loaded version of a collection."""

    def __init__(
        self,
        manifest: Manifest,
        index: faiss.Index,
        chunks: dict[int, Chunk],
        lexical: LexicalIndex | None = None,
        sentences: SentenceVectors | None = None,
    ):
        if index.ntotal != len(chunks):
            raise CorruptCollection(
                f"collection {manifest.collection!r}: {index.ntotal} vectors but {len(chunks)} chunks"
            )
        self.manifest = manifest
        self.index = index
        self.chunks = chunks
        # Loaded from disk with the version; None for a collection built in memory and not written.
        self.lexical = lexical
        # None for a version written without sentence vectors (before they existed, or turned off).
        self.sentences = sentences

    @classmethod
    def empty(cls, manifest: Manifest) -> CollectionIndex:
        return cls(manifest, new_faiss_index(manifest.embedding.dim), {})

    @property
    def name(self) -> str:
        return self.manifest.collection

    @property
    def version(self) -> str:
        return self.manifest.version

    def search(self, query_vector: np.ndarray, k: int) -> list[SearchHit]:
        if self.index.ntotal == 0:
            return []
        query = np.ascontiguousarray(query_vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.index.d:
            raise StoreError(
                f"query vector has {query.shape[1]} dimensions, collection {self.name!r} has {self.index.d}"
            )
        scores, ids = self.index.search(query, min(k, self.index.ntotal))
        return [SearchHit(self.chunks[int(i)], float(s)) for s, i in zip(scores[0], ids[0]) if i != -1]

    def vectors_for(self, ids: list[int]) -> np.ndarray:
        """The stored vectors of these chunk ids, exact for both index types (app/core/vector_index.py)."""
        if not ids:
            return np.zeros((0, self.index.d), dtype=np.float32)
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64)).astype(np.float32)


def new_faiss_index(dim: int) -> faiss.IndexIDMap2:
    """An empty exact index; IndexStore.write turns it into IVF when the collection's size asks."""
    return vector_index.new_flat_index(dim)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class IndexStore:
    """The ``indexes/`` folder: lists, loads, writes and deletes collections.

    ``vector_index`` decides which FAISS index type a written version gets (RAGQA_INDEX_TYPE).
    """

    def __init__(self, root: Path, vector_index: VectorIndexPolicy | None = None):
        self.root = Path(root)
        self.vector_index = vector_index or VectorIndexPolicy()

    def collection_dir(self, name: str) -> Path:
        return self.root / validate_collection_name(name)

    def list_collections(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _COLLECTION_NAME_RE.match(p.name) and (p / CURRENT_FILE).is_file()
        )

    def current_version(self, name: str) -> str | None:
        try:
            version = (self.collection_dir(name) / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return version or None

    def _require_version(self, name: str) -> str:
        version = self.current_version(name)
        if version is None:
            raise CollectionNotFound(name, self.list_collections())
        return version

    def read_manifest(self, name: str) -> Manifest:
        version_dir = self.collection_dir(name) / self._require_version(name)
        return _read_manifest(version_dir)

    def load(self, name: str) -> CollectionIndex:
        version_dir = self.collection_dir(name) / self._require_version(name)
        manifest = _read_manifest(version_dir)
        try:
            index = faiss.read_index(str(version_dir / FAISS_FILE))
        except RuntimeError as exc:  # faiss reports a missing or damaged file this way
            raise CorruptCollection(f"cannot read {version_dir / FAISS_FILE}: {exc}") from exc
        vector_index.configure(index, manifest.vector_index)
        chunks: dict[int, Chunk] = {}
        try:
            with open(version_dir / CHUNKS_FILE, encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    chunks[row["id"]] = Chunk(
                        row["id"],
                        row["doc"],
                        row["start"],
                        row["text"],
                        row.get("page"),
                        row.get("title"),
                        row.get("section"),
                    )
        except (ValueError, KeyError) as exc:
            raise CorruptCollection(f"cannot read {version_dir / CHUNKS_FILE}: {exc}") from exc
        try:
            lexical = LexicalIndex.load(version_dir / BM25_DIR)
        except LexicalIndexMissing:
            lexical = None  # written before BM25 was stored: dense retrieval still works
        try:
            sentences = SentenceVectors.load(version_dir / SENTENCES_DIR)
        except (OSError, ValueError) as exc:
            raise CorruptCollection(f"cannot read {version_dir / SENTENCES_DIR}: {exc}") from exc
        return CollectionIndex(manifest, index, chunks, lexical, sentences)

    @staticmethod
    @contextlib.contextmanager
    def lock_wait(seconds: float) -> Iterator[None]:
        """Within this block (this thread), writer_lock waits at most ``seconds`` for a busy
        lock and then raises CollectionBusy, instead of blocking its thread indefinitely."""
        previous = getattr(_lock_wait, "seconds", None)
        _lock_wait.seconds = seconds
        try:
            yield
        finally:
            _lock_wait.seconds = previous

    @contextlib.contextmanager
    def writer_lock(self, name: str) -> Iterator[None]:
        """Exclusive per-collection lock for the whole read-modify-write of an ingest.

        A writer that finds no collection folder creates one for its lock; if it then writes
        nothing (the request failed), it removes the folder again before unlocking: a failed
        request leaves nothing behind. A writer that was waiting on that removed lock notices
        (the lock file is no longer the one at the path) and locks afresh.
        """
        cdir = self.collection_dir(name)
        while True:
            created = not cdir.exists()
            cdir.mkdir(parents=True, exist_ok=True)
            lock = open(cdir / LOCK_FILE, "a+")
            try:
                wait_s = getattr(_lock_wait, "seconds", None)
                if wait_s is None:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                else:
                    _flock_within(lock, name, wait_s)
                if not _same_file(lock, cdir / LOCK_FILE):
                    lock.close()  # its folder was removed while we waited: lock the new one
                    continue
                try:
                    yield
                finally:
                    if created and not (cdir / CURRENT_FILE).exists():
                        shutil.rmtree(cdir, ignore_errors=True)
                    fcntl.flock(lock, fcntl.LOCK_UN)
                return
            finally:
                lock.close()

    def write(self, collection: CollectionIndex) -> str:
        """Write ``collection`` as a new version and make it live; returns the version name."""
        manifest = collection.manifest
        cdir = self.collection_dir(manifest.collection)
        cdir.mkdir(parents=True, exist_ok=True)
        index = collection.index
        info, rebuild = self.vector_index.plan(index, manifest.vector_index)
        if rebuild:
            started = time.perf_counter()
            index = vector_index.rebuild(index, info)
            log.info(
                "collection %r: FAISS index rebuilt as %s in %.1f s",
                manifest.collection,
                info.model_dump(exclude_none=True),
                time.perf_counter() - started,
            )
        vector_index.configure(index, info)
        now = datetime.now(timezone.utc)
        version = f"v{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
        manifest = manifest.model_copy(
            update={"version": version, "created_at": now.isoformat(timespec="seconds"), "vector_index": info}
        )
        previous = self.current_version(manifest.collection)
        tmp = cdir / f".tmp-{version}"
        tmp.mkdir()
        try:
            faiss.write_index(index, str(tmp / FAISS_FILE))
            with open(tmp / FAISS_FILE, "rb+") as f:
                os.fsync(f.fileno())
            lines = (
                json.dumps(_chunk_row(c), ensure_ascii=False)
                for c in sorted(collection.chunks.values(), key=lambda c: c.id)
            )
            _write_file(tmp / CHUNKS_FILE, "".join(line + "\n" for line in lines).encode("utf-8"))
            # Rebuilt from the chunks on every write, so it always matches them exactly.
            header = manifest.splitter.header
            LexicalIndex.build((c.id, indexed_text(c, header)) for c in collection.chunks.values()).save(
                tmp / BM25_DIR
            )
            if collection.sentences is not None:
                collection.sentences.save(tmp / SENTENCES_DIR)
            # The manifest goes last: a version folder with a manifest is complete.
            _write_file(tmp / MANIFEST_FILE, manifest.model_dump_json(indent=2).encode("utf-8"))
            _fsync_dir(tmp)
            os.rename(tmp, cdir / version)
            pointer = cdir / f".{CURRENT_FILE}.tmp"
            _write_file(pointer, version.encode())
            os.replace(pointer, cdir / CURRENT_FILE)
            _fsync_dir(cdir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(cdir, keep=version, previous=previous)
        return version

    def _prune(self, cdir: Path, keep: str, previous: str | None) -> None:
        """Remove leftovers of crashed writes and all but the newest old versions.

        The version that was live until now is kept first: a version folder that never went
        live (a crash between its rename and the CURRENT swap) must not push it out.
        """
        versions = sorted(p for p in cdir.iterdir() if p.is_dir() and p.name.startswith("v"))
        old = [p for p in versions if p.name not in (keep, previous)]
        kept = KEEP_OLD_VERSIONS - (previous is not None and previous != keep)
        for stale in old[: max(0, len(old) - kept)]:
            shutil.rmtree(stale, ignore_errors=True)
        for tmp in cdir.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def delete(self, name: str) -> None:
        cdir = self.collection_dir(name)
        self._require_version(name)
        with self.writer_lock(name):  # never pull the folder from under a writer
            self._require_version(name)
            # Rename first so the collection disappears at once, even if removal is slow.
            doomed = self.root / f".deleted-{name}-{uuid.uuid4().hex[:6]}"
            os.rename(cdir, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def _same_file(handle, path: Path) -> bool:
    try:
        a, b = os.fstat(handle.fileno()), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _flock_within(lock, name: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise CollectionBusy(name, wait_s) from None
            time.sleep(0.05)


def _chunk_row(chunk: Chunk) -> dict:
    row = {"id": chunk.id, "doc": chunk.doc, "start": chunk.start, "text": chunk.text}
    if chunk.page is not None:
        row["page"] = chunk.page
    if chunk.title is not None:
        row["title"] = chunk.title
    if chunk.section is not None:
        row["section"] = chunk.section
    return row


def _read_manifest(version_dir: Path) -> Manifest:
    try:
        manifest = Manifest.model_validate_json((version_dir / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise CorruptCollection(f"cannot read {version_dir / MANIFEST_FILE}: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise CorruptCollection(
            f"{version_dir}: index format {manifest.format_version}, this ragqa reads {FORMAT_VERSION}; "
            "re-ingest the collection"
        )
    return manifest


class CollectionCache:
    """Loaded collections for the service, reloaded when a new version goes live.

    Each lookup reads the small CURRENT file; a changed version is loaded in full before it
    replaces the old object, so a query in flight keeps using the version it started with.
    """

    def __init__(self, store: IndexStore):
        self.store = store
        self._loaded: dict[str, CollectionIndex] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CollectionIndex:
        validate_collection_name(name)
        version = self.store.current_version(name)
        if version is None:
            self._loaded.pop(name, None)
            raise CollectionNotFound(name, self.store.list_collections())
        cached = self._loaded.get(name)
        if cached is not None and cached.version == version:
            return cached
        with self._lock:
            cached = self._loaded.get(name)
            if cached is not None and cached.version == self.store.current_version(name):
                return cached
            for attempt in range(3):
                try:
                    loaded = self.store.load(name)
                except (OSError, CorruptCollection) as exc:
                    # A writer may have swapped and pruned the version between our reading
                    # CURRENT and opening its files: read CURRENT again. If the new version
                    # stays unreadable, keep answering from the one already loaded.
                    if attempt == 2:
                        if cached is None:
                            raise CorruptCollection(f"collection {name!r} cannot be loaded: {exc}") from exc
                        log.warning("keeping version %s of %r: %s", cached.version, name, exc)
                        return cached
                    continue
                # A version pruned while it was read loses its optional parts (BM25, sentence
                # vectors) without an error: it reads as one written before they existed. A
                # version still live was not pruned; otherwise read CURRENT again.
                if loaded.version == self.store.current_version(name) or attempt == 2:
                    break
            self._loaded[name] = loaded
            return loaded
