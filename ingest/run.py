"""The ingest run: sync a folder (or a few uploaded files) into a collection, re-embedding only what changed.

A run works in two passes under the collection's writer lock:

1. plan: hash every file (streamed, nothing kept) and compare with the manifest;
2. build: load, split and embed the new and changed documents one at a time, in embedding
   batches, into a copy of the live index; then write it as a new version.

Pass 2's per-document work (read, load, split; see ``prepare_document``) runs here, or
elsewhere through a ``DocumentPreparer``: ``ingest/ray_runner.py`` runs it on a Ray cluster and
embeds there too. Either way the documents come back in order to the same version builder, which
gives out the chunk ids and writes the version.

Nothing is loaded beyond the manifest when nothing changed, and no chunk text is embedded
twice: texts already in the collection or earlier in the run reuse their stored vector.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import faiss
import numpy as np

from app.core.config import DEFAULT_EMBEDDING_BACKEND
from app.core.embeddings import (
    MULTILINGUAL_MIN_HANGUL_SHARE,
    Embedder,
    EmbedderRegistry,
    canonical_model_id,
    model_for_text,
)
from app.core.lexical import letter_counts
from app.core.sentence_vectors import (
    ChunkSentences,
    SentenceVectors,
    sentence_texts,
    unit_rows,
)
from app.core.sentences import split_sentences
from app.core.store import (
    Chunk,
    CollectionIndex,
    CollectionNotFound,
    DocumentEntry,
    DocumentNotFound,
    EmbeddingInfo,
    IndexStore,
    Manifest,
    SplitterInfo,
    indexed_text,
    validate_collection_name,
)
from ingest import curation
from ingest.discovery import discover
from ingest.loaders import MAX_FILE_BYTES, LoadedText, SkipDocument, check_loadable, load_bytes
from ingest.splitting import TextPiece, TextSplitter

# Near-duplicate pairs listed in the summary; the total count is always given.
MAX_NEAR_DUPLICATES_LISTED = 50


@dataclass
class IngestProgress:
    files_total: int = 0  # new or changed files to load and embed
    files_done: int = 0
    chunks_done: int = 0  # chunks stored so far (embedded or reused)


ProgressCallback = Callable[[IngestProgress], None]
T = TypeVar("T")


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
    embedded: int = 0  # chunk texts sent to the embedding model by this run
    reused: int = 0  # new chunks whose text was already embedded (in the collection or this run)
    sentences_embedded: int = 0  # sentence texts embedded for the stored sentence vectors
    near_duplicates: list[dict] = field(default_factory=list)  # the first MAX_NEAR_DUPLICATES_LISTED
    near_duplicate_pairs: int = 0
    outliers: list[dict] | None = None  # only when asked for
    version: str | None = None
    seconds: float = 0.0
    reason: str | None = None  # why the run changed nothing on purpose (an empty folder)
    embedding_model: str | None = None  # the collection's model after the run
    # Why every document was split or embedded again (the collection's embedding model, splitter
    # settings or chunk header rule changed); None if not.
    reembedded: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedDocument:
    """A new or changed document after pass 2's per-document work: read, loaded and split."""

    sha256: str  # of the bytes loaded (the file may have changed since pass 1 hashed it)
    loaded: LoadedText
    pieces: list[TextPiece]
    # Text key (``text_key``) -> vector of chunk (and sentence) texts embedded where the document
    # was prepared (a Ray worker); empty when the version builder embeds them itself.
    vectors: dict[bytes, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparationWork:
    """What a ``DocumentPreparer`` needs: the documents, and how this run splits and embeds them."""

    documents: list[tuple[str, Path]]  # (name in the collection, file), in the order they are added
    splitter: SplitterInfo
    max_file_bytes: int
    embedding_model: str
    embedding_batch_size: int
    embedding_backend: str  # RAGQA_EMBEDDING_BACKEND as the run's own encoder has it
    # Keys of the indexed texts whose vectors the collection holds already: never embedded again.
    known_texts: Set[bytes]
    # Whether the sentences of new chunks are embedded too (app/core/sentence_vectors.py).
    sentence_vectors: bool = True


class DocumentPreparer(Protocol):
    """Pass 2's per-document work, done elsewhere: for each document of ``work``, in order, its
    name and its ``PreparedDocument``, or the reason it was skipped."""

    def __call__(self, work: PreparationWork) -> Iterator[tuple[str, PreparedDocument | str]]: ...


def prepare_document(rel: str, path: Path, splitter: TextSplitter, max_file_bytes: int) -> PreparedDocument:
    """Read, load and split one document; SkipDocument or OSError when it cannot be read."""
    data = path.read_bytes()
    loaded = load_bytes(rel, data, max_file_bytes)
    return PreparedDocument(hashlib.sha256(data).hexdigest(), loaded, splitter.split(loaded.text))


def document_chunks(rel: str, doc: PreparedDocument, ids: Iterable[int]) -> list[Chunk]:
    """The chunks of a prepared document, with these ids."""
    loaded = doc.loaded
    return [
        Chunk(cid, rel, p.start, p.text, loaded.page_at(p.start), loaded.title, _section(loaded, p.start))
        for cid, p in zip(ids, doc.pieces)
    ]


def texts_to_embed(
    rel: str, doc: PreparedDocument, header: str | None, known: Set[bytes], sentence_vectors: bool
) -> dict[bytes, str]:
    """What a preparer that embeds (a Ray worker) embeds for ``doc``, by ``text_key``: the indexed
    texts of its chunks that ``known`` lacks, and, with sentence vectors, those chunks' sentences."""
    texts: dict[bytes, str] = {}
    for chunk in document_chunks(rel, doc, range(len(doc.pieces))):
        text = indexed_text(chunk, header)
        if text_key(text) in known:
            continue
        texts.setdefault(text_key(text), text)
        if sentence_vectors:
            for sentence in sentence_texts(chunk.text):
                texts.setdefault(text_key(sentence), sentence)
    return texts


def skip_reason(exc: Exception) -> str | None:
    """Why a document is skipped when reading or loading it raised ``exc``; None: not a skip."""
    if isinstance(exc, SkipDocument):
        return str(exc)
    if isinstance(exc, OSError):
        return f"unreadable: {exc.strerror or exc}"
    return None


def prepare_locally(work: PreparationWork) -> Iterator[tuple[str, PreparedDocument | str]]:
    """``DocumentPreparer`` in this process, one document at a time; the builder embeds."""
    splitter = TextSplitter.from_info(work.splitter)
    for rel, path in work.documents:
        try:
            yield rel, prepare_document(rel, path, splitter, work.max_file_bytes)
        except (SkipDocument, OSError) as exc:
            yield rel, skip_reason(exc) or str(exc)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _section(loaded: LoadedText, offset: int) -> str | None:
    """The heading above ``offset``; None under none, or under the title's own heading (a Markdown ``#``)."""
    section = loaded.section_at(offset)
    return None if section == loaded.title else section


def _splitter_change(old: SplitterInfo, new: SplitterInfo) -> str:
    """The summary's ``reembedded`` reason when a folder is split with other settings than its collection."""
    changes = []
    if old.header != new.header:
        changes.append(f"chunk header rule {old.header or 'none'} -> {new.header or 'none'}")
    if (old.name, old.chunk_size, old.chunk_overlap) != (new.name, new.chunk_size, new.chunk_overlap):
        changes.append(
            f"splitter {old.name} {old.chunk_size}/{old.chunk_overlap} -> {new.name} {new.chunk_size}/{new.chunk_overlap}"
        )
    return "; ".join(changes) + ": every document was split again and its changed chunks embedded again"


class _VersionBuilder:
    """A new version being built from a copy of the live one; the live one stays untouched."""

    def __init__(
        self,
        current: CollectionIndex,
        embedder: Embedder,
        splitter: TextSplitter,
        summary: IngestSummary,
        progress: IngestProgress,
        on_progress: ProgressCallback | None,
        sentence_vectors: bool = True,
    ):
        self.embedder = embedder
        self.splitter = splitter
        self.summary = summary
        self.progress = progress
        self.on_progress = on_progress
        self.manifest = current.manifest.model_copy(deep=True)
        self.manifest.splitter = splitter.info
        self.header = splitter.info.header
        self.index = faiss.deserialize_index(faiss.serialize_index(current.index))
        self.chunks = dict(current.chunks)
        # Indexed text -> (index holding its vector, chunk id): the old index keeps the vectors of
        # chunks removed from the copy, so a re-split or moved text is never re-embedded.
        old_header = current.manifest.splitter.header
        self.known: dict[bytes, tuple[faiss.Index, int]] = {
            text_key(indexed_text(c, old_header)): (current.index, c.id) for c in current.chunks.values()
        }
        self.pending: list[Chunk] = []
        self.added_ids: list[int] = []
        self.prepared_vectors: dict[bytes, np.ndarray] = {}  # embedded where documents were prepared
        # Each chunk's sentence vectors; None: this version is written without them. A chunk
        # whose text the live version holds takes that chunk's rows (chunk text key -> rows).
        old = current.sentences.by_chunk() if current.sentences is not None else {}
        self.sentences: dict[int, ChunkSentences] | None = dict(old) if sentence_vectors else None
        self.known_sentences = {text_key(current.chunks[cid].text): rows for cid, rows in old.items()}
        self.recent_sentences: dict[bytes, np.ndarray] = {}  # the last batch's, by text key
        if current.chunks and current.sentences is None and sentence_vectors:
            self.sentences_note = "sentence vectors added: the sentences of every chunk were embedded"
        elif current.sentences is not None and not sentence_vectors:
            self.sentences_note = "sentence vectors dropped (RAGQA_SENTENCE_VECTORS=false)"
        else:
            self.sentences_note = None

    def remove(self, rel: str) -> None:
        entry = self.manifest.documents.pop(rel)
        if entry.chunk_ids:
            self.index.remove_ids(np.asarray(entry.chunk_ids, dtype=np.int64))
            for cid in entry.chunk_ids:
                del self.chunks[cid]
                if self.sentences is not None:
                    self.sentences.pop(cid, None)

    def add(self, rel: str, doc: PreparedDocument) -> None:
        text = doc.loaded.text
        first = self.manifest.next_chunk_id
        ids = list(range(first, first + len(doc.pieces)))
        self.manifest.next_chunk_id += len(doc.pieces)
        hangul, letters = letter_counts(text)
        self.manifest.documents[rel] = DocumentEntry(
            sha256=doc.sha256, chunk_ids=ids, chars=len(text), letters=letters, hangul_letters=hangul
        )
        self.pending += document_chunks(rel, doc, ids)
        self.prepared_vectors.update(doc.vectors)
        if len(self.pending) >= self.embedder.batch_size:
            self.flush()

    def flush(self) -> None:
        """Give the pending chunks their vectors: reused where the text is known, embedded otherwise."""
        if not self.pending:
            return
        texts = [indexed_text(c, self.header) for c in self.pending]
        to_embed = list(dict.fromkeys(t for t in texts if text_key(t) not in self.known))
        fresh = self._embed(to_embed) if to_embed else None
        self.summary.embedded += len(to_embed)
        fresh_row = {text_key(t): row for row, t in enumerate(to_embed)}
        vectors = np.empty((len(self.pending), self.embedder.dim), dtype=np.float32)
        used: set[bytes] = set()
        for i, text in enumerate(texts):
            key = text_key(text)
            if key in fresh_row:
                vectors[i] = fresh[fresh_row[key]]
                self.summary.reused += key in used  # a second copy within this batch
                used.add(key)
            else:
                source, cid = self.known[key]
                vectors[i] = source.reconstruct(cid)
                self.summary.reused += 1
        ids = np.asarray([c.id for c in self.pending], dtype=np.int64)
        self.index.add_with_ids(vectors, ids)
        for chunk, text in zip(self.pending, texts):
            self.chunks[chunk.id] = chunk
            self.known.setdefault(text_key(text), (self.index, chunk.id))
        self.added_ids += ids.tolist()
        self._add_sentences(self.pending)
        self.progress.chunks_done += len(self.pending)
        self.pending = []
        if self.on_progress:
            self.on_progress(self.progress)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts``: taken from ``prepared_vectors`` where a preparer embedded them,
        embedded here otherwise."""
        keys = [text_key(t) for t in texts]
        missing = [t for t, key in zip(texts, keys) if key not in self.prepared_vectors]
        embedded = iter(self.embedder.embed_documents(missing) if missing else ())
        vectors = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            prepared = self.prepared_vectors.pop(key, None)
            vectors[i] = prepared if prepared is not None else next(embedded)
        return vectors

    def _add_sentences(self, chunks: list[Chunk]) -> None:
        """Sentence vectors for these chunks: a known chunk text's rows, embedded otherwise."""
        if self.sentences is None:
            return
        todo: list[tuple[Chunk, tuple[tuple[int, int], ...]]] = []
        for chunk in chunks:
            known = self.known_sentences.get(text_key(chunk.text))
            if known is not None:
                self.sentences[chunk.id] = known
            else:
                todo.append((chunk, split_sentences(chunk.text)))
        texts = list(dict.fromkeys(t for c, spans in todo for t in sentence_texts(c.text, spans)))
        # Not embedded again: a sentence that is a whole chunk's indexed text (a one-sentence
        # document), and one the previous batch had (chunks overlap across a batch boundary).
        vectors = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        to_embed: list[int] = []
        for i, text in enumerate(texts):
            key = text_key(text)
            if key in self.recent_sentences:
                vectors[i] = self.recent_sentences[key]
            elif key in self.known:
                source, cid = self.known[key]
                vectors[i] = source.reconstruct(cid)
            else:
                to_embed.append(i)
        if to_embed:
            vectors[to_embed] = self._embed([texts[i] for i in to_embed])
        vectors = unit_rows(vectors)
        self.summary.sentences_embedded += len(to_embed)
        self.recent_sentences = {text_key(t): v for t, v in zip(texts, vectors)}
        row = {t: i for i, t in enumerate(texts)}
        for chunk, spans in todo:
            rows = [row[t] for t in sentence_texts(chunk.text, spans)]
            self.sentences[chunk.id] = ChunkSentences.of(spans, vectors[rows])
            self.known_sentences.setdefault(text_key(chunk.text), self.sentences[chunk.id])

    def result(self) -> CollectionIndex:
        self.flush()
        sentences = None
        if self.sentences is not None:
            # A collection written before sentence vectors gets them for every chunk now.
            missing = [c for c in self.chunks.values() if c.id not in self.sentences]
            for start in range(0, len(missing), self.embedder.batch_size):
                self._add_sentences(missing[start : start + self.embedder.batch_size])
            sentences = SentenceVectors.from_chunks(self.sentences, self.embedder.dim)
        if self.sentences_note:
            self.summary.reembedded = "; ".join(filter(None, [self.summary.reembedded, self.sentences_note]))
        self.prepared_vectors.clear()
        return CollectionIndex(self.manifest, self.index, self.chunks, sentences=sentences)


class IngestJob:
    def __init__(
        self,
        store: IndexStore,
        embedder: Embedder,
        splitter: TextSplitter,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
        near_duplicate_cosine: float = curation.NEAR_DUPLICATE_COSINE,
        embedders: EmbedderRegistry | None = None,
        choose_model: bool = False,
        prepare: DocumentPreparer = prepare_locally,
        sentence_vectors: bool = True,
    ):
        """``embedder`` embeds new collections; with ``choose_model`` (no model set explicitly),
        a folder or first upload whose letters are mostly Hangul gets the multilingual model
        instead, from ``embedders``, and a folder re-ingested into a collection is re-embedded
        when the rule's choice differs from its model. A collection is otherwise always written
        with the model its manifest names. ``prepare`` does pass 2's per-document work of folder
        ingests (``prepare_locally``, or on Ray: ``ingest/ray_runner.py``). ``sentence_vectors``:
        store each chunk's sentence vectors (app/core/sentence_vectors.py) in every version written."""
        self.store = store
        self.embedder = embedder
        self.embedders = embedders or EmbedderRegistry(embedder)
        self.choose_model = choose_model
        self.splitter = splitter
        self.max_file_bytes = max_file_bytes
        self.near_duplicate_cosine = near_duplicate_cosine
        self.prepare = prepare
        self.sentence_vectors = sentence_vectors

    def run(
        self,
        folder: Path,
        collection: str,
        *,
        prune: bool = True,
        outliers: bool = False,
        on_progress: ProgressCallback | None = None,
        allow_empty: bool = False,
    ) -> IngestSummary:
        """Sync ``folder`` into ``collection``; with ``prune``, documents gone from it are removed.

        A folder with no document in it (a wrong path, a mount that failed) changes nothing and
        says why in ``reason``; ``allow_empty`` syncs it anyway, removing every document."""
        folder = Path(folder)
        validate_collection_name(collection)
        if not folder.is_dir():
            raise IngestError(f"{folder} is not a folder")
        files, passed_over = discover(folder)
        if not files and not allow_empty:
            summary = IngestSummary(collection=collection, skipped=list(passed_over))
            manifest = self._current_manifest(collection)
            if manifest is not None:
                summary.chunks, summary.version = manifest.chunk_count, manifest.version
            summary.reason = (
                f"no document in {folder}: {collection!r} is left as it is"
                " (a wrong path or a mount that failed?)"
            )
            return summary
        return self._sync(
            collection,
            files,
            passed_over=passed_over,
            whole_folder=True,
            prune=prune,
            outliers=outliers,
            on_progress=on_progress,
        )

    def add_files(
        self,
        collection: str,
        files: Iterable[tuple[str, Path]],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> IngestSummary:
        """Add or replace these documents (name in the collection, file); others stay as they are."""
        validate_collection_name(collection)
        return self._sync(collection, list(files), on_progress=on_progress)

    def remove_documents(self, collection: str, docs: list[str]) -> IngestSummary:
        """Remove documents by name; DocumentNotFound if one is not in the collection."""
        started = time.perf_counter()
        summary = IngestSummary(collection=collection)
        with self.store.writer_lock(collection):
            current = self.store.load(collection)
            for doc in docs:
                if doc not in current.manifest.documents:
                    raise DocumentNotFound(collection, doc)
            splitter = TextSplitter.from_info(current.manifest.splitter)  # nothing is re-split
            embedder = self.embedders.get(current.manifest.embedding.model)
            builder = _VersionBuilder(
                current, embedder, splitter, summary, IngestProgress(), None, self.sentence_vectors
            )
            for doc in dict.fromkeys(docs):
                builder.remove(doc)
            summary.deleted = len(set(docs))
            updated = builder.result()
            summary.version = self.store.write(updated)
            summary.chunks = updated.manifest.chunk_count
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _sync(
        self,
        collection: str,
        files: list[tuple[str, Path]],
        *,
        passed_over: list[dict[str, str]] | None = None,
        whole_folder: bool = False,
        prune: bool = False,
        outliers: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> IngestSummary:
        """The two passes of a run (see the module's docstring). ``whole_folder``: ``files`` are
        a folder's, split with the job's splitter; otherwise a few files added to a collection,
        split the way the rest of it was. ``prune``: documents not in ``files`` are removed."""
        passed_over = passed_over or []
        started = time.perf_counter()
        summary = IngestSummary(collection=collection, skipped=list(passed_over))
        with self.store.writer_lock(collection):
            manifest = self._current_manifest(collection, whole_folder)
            old_docs = manifest.documents if manifest else {}
            splitter = self.splitter
            if manifest is not None and not whole_folder:
                # A few files added to a collection are split the way the rest of it was.
                splitter = TextSplitter.from_info(manifest.splitter)
            same_splitter = manifest is not None and manifest.splitter == splitter.info
            if manifest is not None and not same_splitter:
                # Every document is split again; only chunks whose indexed text is new are embedded.
                summary.reembedded = _splitter_change(manifest.splitter, splitter.info)

            # Pass 1: plan from sizes and hashes only.
            changed: list[tuple[str, Path]] = []
            seen: set[str] = set()
            for rel, path in files:
                seen.add(rel)
                sha = self._unless_skipped(summary, rel, old_docs, lambda: self._hash(rel, path))
                if sha is None:
                    continue
                previous = old_docs.get(rel)
                if previous and previous.sha256 == sha and same_splitter:
                    summary.unchanged += 1
                else:
                    changed.append((rel, path))
            # A file that is there but fails to load keeps its previous version; one that was
            # passed over (gone, hidden, a symlink out or a broken one) is pruned like a deletion.
            failed = {s["path"] for s in summary.skipped[len(passed_over) :]}
            gone = [d for d in old_docs if d not in seen and d not in failed] if prune else []

            model, why = self._model_for(manifest, files, {rel for rel, _ in changed}, failed, whole_folder)
            summary.embedding_model = model
            previously: set[str] = set()
            if manifest is not None and model != manifest.embedding.model:
                # A new index with every document of the folder in it, embedded with the new model;
                # the old vectors do not compare with its vectors.
                summary.reembedded = "; ".join(filter(None, [why, summary.reembedded]))
                previously = set(old_docs)
                changed = [(rel, path) for rel, path in files if rel in seen and rel not in failed]
                summary.unchanged = 0
                manifest, old_docs = None, {}
                for skipped in summary.skipped[len(passed_over) :]:  # their old vectors cannot stay
                    skipped["reason"] = skipped["reason"].replace(
                        " (its previous version stays indexed)", " (dropped: the collection was re-embedded)"
                    )

            if manifest is not None and not changed and not gone and not outliers:
                summary.chunks, summary.version = manifest.chunk_count, manifest.version
                summary.seconds = round(time.perf_counter() - started, 3)
                return summary

            # Pass 2: load, split and embed the changed documents one at a time.
            embedder = self.embedders.get(model)
            current = self._load_current(collection, manifest, embedder)
            progress = IngestProgress(files_total=len(changed))
            builder = _VersionBuilder(
                current, embedder, splitter, summary, progress, on_progress, self.sentence_vectors
            )
            for rel in gone:
                builder.remove(rel)
            summary.deleted = len(gone)
            # Uploads (a few files, while the service answers) are always prepared in-process.
            prepare = self.prepare if whole_folder else prepare_locally
            work = PreparationWork(
                changed,
                splitter.info,
                self.max_file_bytes,
                embedder.model_id,
                embedder.batch_size,
                getattr(embedder, "backend", DEFAULT_EMBEDDING_BACKEND),
                builder.known.keys(),
                builder.sentences is not None,
            )
            for rel, prepared in prepare(work):
                progress.files_done += 1
                if isinstance(prepared, str):
                    self._skip(summary, rel, prepared, old_docs)
                    continue
                if rel in builder.manifest.documents:
                    builder.remove(rel)
                    summary.updated += 1
                elif rel in previously:
                    summary.updated += 1
                else:
                    summary.added += 1
                builder.add(rel, prepared)
                del prepared
            updated = builder.result()

            pairs = curation.near_duplicates(updated, builder.added_ids, self.near_duplicate_cosine)
            summary.near_duplicate_pairs = len(pairs)
            summary.near_duplicates = pairs[:MAX_NEAR_DUPLICATES_LISTED]
            if outliers:
                summary.outliers = curation.outliers(updated)
            # A first folder ingest creates the collection even if every file was skipped;
            # an upload of nothing usable does not.
            if (
                summary.added
                or summary.updated
                or gone
                or (manifest is None and whole_folder)
                or summary.reembedded
            ):
                summary.version = self.store.write(updated)
            else:
                summary.version = manifest.version if manifest else None
            summary.chunks = updated.manifest.chunk_count
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _hash(self, rel: str, path: Path) -> str:
        """Pass 1: whether the file is worth loading (by size and name), and its sha256."""
        check_loadable(rel, path.stat().st_size, self.max_file_bytes)
        return _sha256_file(path)

    def _unless_skipped(
        self, summary: IngestSummary, rel: str, old_docs: dict, step: Callable[[], T]
    ) -> T | None:
        """``step()``, or None with the document recorded as skipped when it cannot be read."""
        try:
            return step()
        except (SkipDocument, OSError) as exc:
            self._skip(summary, rel, skip_reason(exc) or str(exc), old_docs)
        return None

    @staticmethod
    def _skip(summary: IngestSummary, rel: str, reason: str, old_docs: dict) -> None:
        if rel in old_docs:
            reason += " (its previous version stays indexed)"
        summary.skipped.append({"path": rel, "reason": reason})

    def _current_manifest(self, collection: str, whole_folder: bool = False) -> Manifest | None:
        """The live manifest; a folder ingested with RAGQA_EMBEDDING_MODEL set must match its
        model (uploads always use the collection's own)."""
        try:
            manifest = self.store.read_manifest(collection)
        except CollectionNotFound:
            return None
        if whole_folder and not self.choose_model and manifest.embedding.model != self.embedder.model_id:
            raise IngestError(
                f"collection {collection!r} was embedded with {manifest.embedding.model!r}, "
                f"but RAGQA_EMBEDDING_MODEL asks for {self.embedder.model_id!r}; unset it (each "
                "collection keeps its model), set it to that model, or use a new collection name"
            )
        return manifest

    def _model_for(
        self,
        manifest: Manifest | None,
        files: list[tuple[str, Path]],
        changed: set[str],
        failed: set[str],
        whole_folder: bool,
    ) -> tuple[str, str | None]:
        """The model this run writes the collection with, and why when it is not the manifest's.

        An existing collection keeps its model, but for a whole folder under the automatic
        choice: there the rule decides over every document of the folder, from the letter counts
        in the manifest where the document is unchanged, from its text otherwise."""
        default = self.embedder.model_id
        if manifest is not None and (not self.choose_model or not whole_folder):
            return manifest.embedding.model, None
        if not self.choose_model:
            return default, None
        hangul = letters = 0
        old = manifest.documents if manifest is not None else {}
        for rel, path in files:
            entry = old.get(rel)
            counts: tuple[int | None, int | None] = (
                (entry.hangul_letters, entry.letters) if entry is not None else (None, None)
            )
            if rel in changed or (None in counts and rel not in failed):
                counts = self._letters_of(rel, path)
            hangul += counts[0] or 0
            letters += counts[1] or 0
        model = model_for_text(hangul, letters, default)
        share = hangul / letters if letters else 0.0
        if manifest is None or model == manifest.embedding.model:
            return model, None
        return model, (
            f"embedding model {manifest.embedding.model} -> {model}: the documents' letters are "
            f"{share:.0%} Hangul (a collection at {MULTILINGUAL_MIN_HANGUL_SHARE:.0%} or more gets "
            f"{canonical_model_id(model_for_text(1, 1))}); every document was embedded again"
        )

    def _letters_of(self, rel: str, path: Path) -> tuple[int | None, int | None]:
        """(Hangul letters, letters) of one document's text; (None, None) if it does not load."""
        try:
            check_loadable(rel, path.stat().st_size, self.max_file_bytes)
            text = load_bytes(rel, path.read_bytes(), self.max_file_bytes).text
        except (SkipDocument, OSError):
            return None, None
        return letter_counts(text)

    def _load_current(
        self, collection: str, manifest: Manifest | None, embedder: Embedder
    ) -> CollectionIndex:
        if manifest is None:
            info = EmbeddingInfo(model=embedder.model_id, dim=embedder.dim, normalized=True)
            return CollectionIndex.empty(
                Manifest(collection=collection, embedding=info, splitter=self.splitter.info)
            )
        return self.store.load(collection)
