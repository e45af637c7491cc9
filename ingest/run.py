"""The ingest run: sync a folder into a collection, re-embedding only what changed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from app.core.embeddings import EmbeddingModel
from app.core.store import (
    Chunk,
    CollectionIndex,
    CollectionNotFound,
    DocumentEntry,
    EmbeddingInfo,
    IndexStore,
    Manifest,
    validate_collection_name,
)
from ingest.loaders import SkipDocument, load_document
from ingest.splitting import TextSplitter

ProgressCallback = Callable[[int, int], None]  # (chunks embedded so far, chunks to embed)


class IngestError(Exception):
    """The run cannot proceed at all (as opposed to one skipped document)."""


@dataclass
class IngestSummary:
    collection: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0  # chunks in the collection after the run
    embedded: int = 0  # chunks embedded by this run
    version: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _LoadedDocument:
    rel: str
    sha256: str
    text: str


def discover(folder: Path) -> tuple[list[tuple[str, Path]], list[dict[str, str]]]:
    """Regular files under ``folder`` (relative POSIX path, path), and what was passed over."""
    files: list[tuple[str, Path]] = []
    passed_over: list[dict[str, str]] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            if path.is_file():
                passed_over.append({"path": rel, "reason": "hidden file"})
            continue
        if path.is_file():
            files.append((rel, path))
    return files, passed_over


class IngestJob:
    def __init__(self, store: IndexStore, embedder: EmbeddingModel, splitter: TextSplitter):
        self.store = store
        self.embedder = embedder
        self.splitter = splitter

    def run(
        self,
        folder: Path,
        collection: str,
        *,
        prune: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> IngestSummary:
        started = time.perf_counter()
        folder = Path(folder)
        validate_collection_name(collection)
        if not folder.is_dir():
            raise IngestError(f"{folder} is not a folder")
        summary = IngestSummary(collection=collection)
        files, summary.skipped = discover(folder)

        with self.store.writer_lock(collection):
            current = self._load_current(collection)
            old_docs = current.manifest.documents
            same_splitter = current.manifest.splitter == self.splitter.info

            to_embed: list[_LoadedDocument] = []
            seen: set[str] = set()
            for rel, path in files:
                seen.add(rel)
                try:
                    raw_sha = hashlib.sha256(path.read_bytes()).hexdigest()
                    previous = old_docs.get(rel)
                    if previous and previous.sha256 == raw_sha and same_splitter:
                        summary.unchanged += 1
                        continue
                    text = load_document(path)
                except SkipDocument as exc:
                    reason = str(exc)
                    if rel in old_docs:
                        reason += " (its previous version stays indexed)"
                    summary.skipped.append({"path": rel, "reason": reason})
                    continue
                except OSError as exc:
                    summary.skipped.append({"path": rel, "reason": f"unreadable: {exc}"})
                    continue
                to_embed.append(_LoadedDocument(rel, raw_sha, text))
                if rel in old_docs:
                    summary.updated += 1
                else:
                    summary.added += 1

            skipped_paths = {s["path"] for s in summary.skipped}
            gone = [d for d in old_docs if d not in seen and d not in skipped_paths] if prune else []
            summary.deleted = len(gone)

            if current.manifest.documents and not to_embed and not gone:
                summary.chunks = current.manifest.chunk_count
                summary.version = current.version
            else:
                updated = self._apply(current, to_embed, gone, summary, on_progress)
                summary.version = self.store.write(updated)
                summary.chunks = updated.manifest.chunk_count
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _load_current(self, collection: str) -> CollectionIndex:
        model = EmbeddingInfo(model=self.embedder.model_id, dim=self.embedder.dim, normalized=True)
        try:
            current = self.store.load(collection)
        except CollectionNotFound:
            return CollectionIndex.empty(
                Manifest(collection=collection, embedding=model, splitter=self.splitter.info)
            )
        if current.manifest.embedding.model != model.model:
            raise IngestError(
                f"collection {collection!r} was embedded with {current.manifest.embedding.model!r}, "
                f"but this run uses {model.model!r}; use that model, or a new collection name"
            )
        return current

    def _apply(
        self,
        current: CollectionIndex,
        documents: list[_LoadedDocument],
        gone: list[str],
        summary: IngestSummary,
        on_progress: ProgressCallback | None,
    ) -> CollectionIndex:
        manifest = current.manifest.model_copy(deep=True)
        manifest.splitter = self.splitter.info
        # Work on a copy: the loaded version stays valid for anyone still reading it.
        index = faiss.deserialize_index(faiss.serialize_index(current.index))
        chunks = dict(current.chunks)

        replaced = [d.rel for d in documents if d.rel in manifest.documents] + gone
        doomed = [cid for rel in replaced for cid in manifest.documents[rel].chunk_ids]
        if doomed:
            index.remove_ids(np.asarray(doomed, dtype=np.int64))
            for cid in doomed:
                del chunks[cid]
        for rel in replaced:
            del manifest.documents[rel]

        new_chunks: list[Chunk] = []
        for doc in documents:
            pieces = self.splitter.split(doc.text)
            ids = list(range(manifest.next_chunk_id, manifest.next_chunk_id + len(pieces)))
            manifest.next_chunk_id += len(pieces)
            new_chunks += [Chunk(cid, doc.rel, p.start, p.text) for cid, p in zip(ids, pieces)]
            manifest.documents[doc.rel] = DocumentEntry(
                sha256=doc.sha256, chunk_ids=ids, chars=len(doc.text)
            )

        vectors = self._embed_unique([c.text for c in new_chunks], on_progress)
        summary.embedded = len(new_chunks)
        if new_chunks:
            index.add_with_ids(vectors, np.asarray([c.id for c in new_chunks], dtype=np.int64))
            chunks.update((c.id, c) for c in new_chunks)
        return CollectionIndex(manifest, index, chunks)

    def _embed_unique(self, texts: list[str], on_progress: ProgressCallback | None) -> np.ndarray:
        """Embed each distinct text once, in batches, reporting progress."""
        unique = list(dict.fromkeys(texts))
        batch = self.embedder.batch_size
        parts = []
        for i in range(0, len(unique), batch):
            parts.append(self.embedder.embed_documents(unique[i : i + batch]))
            if on_progress:
                on_progress(min(i + batch, len(unique)), len(unique))
        if not parts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        by_text = dict(zip(unique, np.vstack(parts)))
        return np.vstack([by_text[t] for t in texts]).astype(np.float32)
