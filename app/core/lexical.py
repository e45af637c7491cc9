"""Lexical retrieval: tokenization (Korean morphemes by kiwipiepy) and the stored BM25 index.

The BM25 index lives in ``<version>/bm25/`` beside the FAISS index, so it is swapped in with
the same atomic rename. bm25s writes it as ``.npy`` arrays and JSON; both are read back with
``allow_pickle=False``, so loading never runs code from the index folder.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

BM25_DIR = "bm25"
META_FILE = "lexical.json"
CHUNK_IDS_FILE = "chunk_ids.npy"

KIWI_TOKENIZER = "kiwi-morphemes/1"
WHITESPACE_TOKENIZER = "whitespace/1"
DEFAULT_TOKENIZER = KIWI_TOKENIZER

# Hangul syllables, jamo and compatibility jamo.
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_WORD = re.compile(r"\w+")
_HANGUL_RUN = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+")
# Texts where at least this share of the letters is Hangul go through the morpheme analyser;
# an English passage that quotes a Korean name does not.
KOREAN_MIN_SHARE = 0.2
# Kiwi tags dropped from the index: particles (J*), endings (E*), the copula (VCP), derivational
# suffixes (XS*) and punctuation (S* but letters/numbers/hanja). They occur in nearly every
# Korean sentence and only add noise to the length normalisation.
_DROPPED_TAG_PREFIXES = ("J", "E", "VCP", "XS", "SF", "SP", "SS", "SE", "SO", "SW", "W_")
_STOPWORDS = frozenset(STOPWORDS_EN)


class LexicalIndexMissing(Exception):
    """The collection version has no BM25 index (written before ragqa stored one)."""


def letter_counts(text: str) -> tuple[int, int]:
    """(Hangul letters, all letters) in ``text``."""
    return len(_HANGUL.findall(text)), sum(1 for c in text if c.isalpha())


def hangul_share(text: str) -> float:
    if not _HANGUL.search(text):
        return 0.0  # most text on an English collection: no pass over its letters
    hangul, letters = letter_counts(text)
    return hangul / letters if letters else 0.0


def is_korean(text: str) -> bool:
    return hangul_share(text) >= KOREAN_MIN_SHARE


_kiwi_lock = threading.Lock()
# Held while the one Kiwi is made: a cold service worker handed many requests at once made one
# Kiwi per request thread (lru_cache does not hold back concurrent first callers), several GB.
_kiwi_loading = threading.Lock()


@lru_cache(maxsize=1)
def _load_kiwi():
    from kiwipiepy import Kiwi  # loads its model from the kiwipiepy-model package (~4 s)

    return Kiwi()


def _kiwi():
    with _kiwi_loading:
        return _load_kiwi()


def korean_sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence by Kiwi's splitter, which knows Korean endings (-다, -요)."""
    kiwi = _kiwi()
    with _kiwi_lock:
        return [(s.start, s.end) for s in kiwi.split_into_sents(text)]


def korean_morphemes(text: str) -> list[tuple[str, str]]:
    """(form, tag) of each morpheme, e.g. 우체통은 -> (우체통, NNG), (은, JX)."""
    return [(form, tag) for form, tag, _ in _analyse(text)]


def _analyse(text: str) -> list[tuple[str, str, int]]:
    kiwi = _kiwi()
    with _kiwi_lock:
        return [(t.form, t.tag, t.start) for t in kiwi.tokenize(text)]


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def _korean_terms(text: str) -> list[str]:
    """Content morphemes of the Hangul in ``text``, plus each word's stem when it differs.

    Kiwi may split a word it does not know differently in a passage than alone in a query
    (체펠린은 -> 체펠 + 린, but 체펠린 -> 체펠린), and a compound into its parts (비행선 -> 비행 + 선);
    the stem (the word's leading content morphemes, joined) matches both ways.
    """
    word_of = {}
    for n, match in enumerate(re.finditer(r"\S+", text)):
        for i in range(match.start(), match.end()):
            word_of[i] = n
    terms: list[str] = []
    stems: dict[int, list[str]] = {}
    closed: set[int] = set()
    for form, tag, start in _analyse(text):
        word = word_of.get(start, -1)
        if tag.startswith(_DROPPED_TAG_PREFIXES) or not _HANGUL.search(form):
            closed.add(word)
            continue
        terms.append(form)
        if word not in closed:
            stems.setdefault(word, []).append(form)
    for parts in stems.values():
        if len(parts) > 1:
            terms.append("".join(parts))
    return terms


def tokenize(text: str, tokenizer: str = DEFAULT_TOKENIZER) -> list[str]:
    """BM25 terms of ``text``. Korean text (by Hangul share) is split into content morphemes.

    In Korean text, terms from the analyser are kept only where they are Hangul; Latin words and
    numbers get the same terms as in English text (the analyser splits e.g. 'airship.' oddly).
    """
    if tokenizer == WHITESPACE_TOKENIZER or not is_korean(text):
        return _words(text)
    if tokenizer != KIWI_TOKENIZER:
        raise ValueError(f"unknown tokenizer {tokenizer!r}")
    return _korean_terms(text) + _words(_HANGUL_RUN.sub(" ", text))


# Sentences whose terms are kept: the evidence stage reads every passage sentence's terms per
# answer, and the passages of popular questions repeat (Kiwi costs ~0.2 ms a Korean sentence).
TERM_SET_CACHE_SIZE = 10_000


@lru_cache(maxsize=TERM_SET_CACHE_SIZE)
def term_set(text: str) -> frozenset[str]:
    """The distinct BM25 terms of ``text`` (default tokenizer), remembered for repeated texts."""
    return frozenset(tokenize(text))


class LexicalIndex:
    """BM25 over a collection's chunks; ``search`` returns (chunk id, score), best first."""

    def __init__(self, bm25: bm25s.BM25 | None, chunk_ids: np.ndarray, tokenizer: str):
        self.bm25 = bm25
        self.chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        self.tokenizer = tokenizer
        self._vocab = bm25.vocab_dict if bm25 is not None else {}

    @classmethod
    def build(cls, chunks: Iterable[tuple[int, str]], tokenizer: str = DEFAULT_TOKENIZER) -> LexicalIndex:
        # Each text's terms become vocabulary ids at once: the id lists share one int object per
        # term, where lists of term strings hold a new string per occurrence (peak 0.65 against
        # 1.66 GiB at 200k chunks; docs/benchmarks.md).
        ids: list[int] = []
        corpus: list[list[int]] = []
        vocab: dict[str, int] = {}
        for chunk_id, text in chunks:
            ids.append(chunk_id)
            corpus.append([vocab.setdefault(term, len(vocab)) for term in tokenize(text, tokenizer)])
        if not ids:
            return cls(None, np.zeros(0, dtype=np.int64), tokenizer)
        bm25 = bm25s.BM25()
        bm25.index(bm25s.tokenization.Tokenized(ids=corpus, vocab=vocab), show_progress=False)
        return cls(bm25, np.asarray(ids, dtype=np.int64), tokenizer)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        if self.bm25 is None or k <= 0:
            return []
        term_ids = [self._vocab[t] for t in tokenize(query, self.tokenizer) if t in self._vocab]
        if not term_ids:
            return []
        scores = self._scores(term_ids)
        # Only documents holding a query term score above 0: rank those, not every document.
        matched = np.flatnonzero(scores > 0)
        if len(matched) > k:
            matched = matched[np.argpartition(-scores[matched], k - 1)[:k]]
        best = matched[np.lexsort((matched, -scores[matched]))]  # best first; ties by row
        return [(int(self.chunk_ids[r]), float(scores[r])) for r in best]

    def _scores(self, term_ids: list[int]) -> np.ndarray:
        """BM25 score of every document: the sum of the query terms' precomputed columns.

        bm25s's own scoring adds each column with ``np.add.at``, which at 1M chunks cost ~40 ms
        a query; a column holds each document at most once, so plain fancy-index addition is exact.
        """
        assert self.bm25 is not None
        matrix = self.bm25.scores
        data, indices, indptr = matrix["data"], matrix["indices"], matrix["indptr"]
        scores = np.zeros(matrix["num_docs"], dtype=np.float32)
        for term in term_ids:
            start, end = indptr[term], indptr[term + 1]
            scores[indices[start:end]] += data[start:end]
        return scores

    def save(self, folder: Path) -> None:
        folder.mkdir()
        if self.bm25 is not None:
            self.bm25.save(str(folder), allow_pickle=False, show_progress=False)
        np.save(folder / CHUNK_IDS_FILE, self.chunk_ids, allow_pickle=False)
        meta = {"tokenizer": self.tokenizer, "chunks": len(self.chunk_ids)}
        (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        for path in folder.iterdir():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        if not (folder / META_FILE).is_file():
            raise LexicalIndexMissing(f"no BM25 index in {folder.parent}")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        chunk_ids = np.load(folder / CHUNK_IDS_FILE, allow_pickle=False)
        bm25 = None
        if len(chunk_ids):
            # Memory-mapped: the score arrays are paged in as queries touch them, not copied.
            bm25 = bm25s.BM25.load(
                str(folder), allow_pickle=False, show_progress=False, mmap=True, verbosity=0
            )
        return cls(bm25, chunk_ids, meta["tokenizer"])
