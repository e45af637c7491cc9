"""Evidence at sentence level: pick the passage sentences that answer a question, and check an
answer against them.

Both use the same two signals, so "support" has one definition:
- the cosine between the collection's embeddings of the two texts;
- lexical overlap over BM25 terms (``app.core.lexical.tokenize``: kiwi morphemes for Korean).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app.core.lexical import is_korean, term_set
from app.core.sentence_vectors import unit_rows
from app.core.sentences import split_sentences
from app.rag.retrieval import Passage

_MARKER = re.compile(r"\[\d+\]")


class SentenceEmbedder(Protocol):
    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class EvidenceSentence:
    source_id: int  # the id of the passage in ``sources``
    rank: int  # that passage's retrieval rank, 1-based
    start: int  # character offsets in that passage's text
    end: int
    text: str


def _is_statement(text: str) -> bool:
    """Headings, titles, labels and questions answer nothing: a Markdown heading, a sentence
    ending in a question mark (an FAQ's questions), or under three words (two for Korean,
    whose words carry their particles)."""
    if text.lstrip().startswith("#") or text.rstrip().endswith(("?", "？")):
        return False
    words = len(text.split())
    # The script is read only where it decides (two words): it costs a pass over every letter.
    return words >= 3 or (words == 2 and is_korean(text))


def passage_sentences(passages: Sequence[Passage]) -> list[EvidenceSentence]:
    """Every sentence of the passages, in rank order; a sentence repeated by overlapping chunks
    is kept once, where it ranks best."""
    seen: set[str] = set()
    out: list[EvidenceSentence] = []
    for passage in sorted(passages, key=lambda p: p.rank):
        for start, end in split_sentences(passage.text):
            text = passage.text[start:end]
            key = " ".join(text.split()).lower()
            if key in seen or not _is_statement(text):
                continue
            seen.add(key)
            out.append(EvidenceSentence(passage.id, passage.rank, start, end, text))
    return out


def _sentence_vectors(
    sentences: list[EvidenceSentence], passages: Sequence[Passage], embedder: SentenceEmbedder
) -> np.ndarray:
    """Unit vectors of the sentences: stored at ingest where the passage carries them, embedded
    otherwise (a collection without sentence vectors, or a passage that packing cut)."""
    stored = {
        (p.id, int(start), int(end)): vector
        for p in passages
        if p.sentences is not None
        for (start, end), vector in zip(p.sentences.spans, p.sentences.vectors)
    }
    rows = [stored.get((s.source_id, s.start, s.end)) for s in sentences]
    missing = [s.text for s, row in zip(sentences, rows) if row is None]
    if len(missing) == len(sentences):
        return unit_rows(embedder.embed_documents(missing))
    fresh = iter(unit_rows(embedder.embed_documents(missing)) if missing else ())
    return np.stack([row.astype(np.float32) if row is not None else next(fresh) for row in rows])


@dataclass
class Evidence:
    """The candidate sentences of one answer, with their vectors and terms."""

    question: str
    sentences: list[EvidenceSentence]
    vectors: np.ndarray  # one unit row per sentence
    question_vector: np.ndarray
    terms: list[frozenset[str]] = field(default_factory=list)
    # Inverse document frequency of each term over the sentences themselves, so a word that
    # every candidate shares (the topic) counts less than the one that singles out the answer.
    idf: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls, question: str, passages: Sequence[Passage], embedder: SentenceEmbedder
    ) -> Evidence:
        sentences = passage_sentences(passages)
        vectors = _sentence_vectors(sentences, passages, embedder)
        question_vector = unit_rows(np.asarray(embedder.embed_query(question), dtype=np.float32))
        terms = [term_set(s.text) for s in sentences]
        n = len(sentences)
        df: dict[str, int] = {}
        for ts in terms:
            for t in ts:
                df[t] = df.get(t, 0) + 1
        idf = {t: math.log(1 + (n + 1) / (d + 0.5)) for t, d in df.items()}
        return cls(question, sentences, vectors, question_vector, terms, idf)

    def __len__(self) -> int:
        return len(self.sentences)

    def question_cosine(self, sentence: EvidenceSentence) -> float:
        return float(self.vectors[self.sentences.index(sentence)] @ self.question_vector)

    def cosines(self, vector: np.ndarray) -> np.ndarray:
        if not len(self.sentences):
            return np.zeros(0, dtype=np.float32)
        return self.vectors @ vector


def word_share(query_terms: AbstractSet[str], sentence_terms: AbstractSet[str]) -> float:
    return len(query_terms & sentence_terms) / len(query_terms) if query_terms else 0.0


# The selector's weights. They were set once on a grid over five sets of two kinds and two
# languages (SQuAD v1.1 and v2.0 dev subsets, COVID-QA, TyDi QA Korean, our Korean set) and
# kept where every set gained over the plain picker; `bench/extractive.py --grid` reruns it.
SELECTOR_WEIGHTS: dict[str, float] = {
    "cosine": 1.0,  # question-sentence cosine
    "coverage": 1.0,  # IDF-weighted share of the question's terms in the sentence
    "word_share": 0.5,  # plain share of the question's terms in the sentence
    "rank": 0.2,  # -log(passage rank): retrieval already judged the passage
    "passage_coverage": 0.3,  # IDF-weighted share of the question's terms in the whole passage
    "length": -0.1,  # log(1 + characters): long sentences contain everything a little
}


class SentenceSelector:
    """Ranks evidence sentences by how likely each holds the answer."""

    def __init__(self, weights: dict[str, float] | None = None):
        self.weights = dict(SELECTOR_WEIGHTS if weights is None else weights)

    def features(self, evidence: Evidence) -> dict[str, np.ndarray]:
        n = len(evidence)
        q_terms = term_set(evidence.question)
        idf = evidence.idf
        q_weight = sum(idf.get(t, 1.0) for t in q_terms) or 1.0
        by_passage: dict[int, set[str]] = {}
        for s, ts in zip(evidence.sentences, evidence.terms):
            by_passage.setdefault(s.source_id, set()).update(ts)

        def coverage(ts: AbstractSet[str]) -> float:
            return sum(idf.get(t, 1.0) for t in q_terms & ts) / q_weight

        return {
            "cosine": evidence.cosines(evidence.question_vector).astype(np.float64),
            "coverage": np.array([coverage(ts) for ts in evidence.terms]),
            "word_share": np.array([word_share(q_terms, ts) for ts in evidence.terms]),
            "rank": np.array([-math.log(s.rank) for s in evidence.sentences]),
            "passage_coverage": np.array(
                [coverage(by_passage[s.source_id]) for s in evidence.sentences]
            ),
            "length": np.array([math.log1p(len(s.text)) for s in evidence.sentences]),
        } if n else {}

    def scores(self, evidence: Evidence) -> np.ndarray:
        if not len(evidence):
            return np.zeros(0)
        features = self.features(evidence)
        return sum(w * features[name] for name, w in self.weights.items() if w)

    def select(self, evidence: Evidence, k: int) -> list[EvidenceSentence]:
        """The ``k`` best sentences, best first (stable on ties)."""
        if k <= 0 or not len(evidence):
            return []
        order = np.argsort(-np.asarray(self.scores(evidence)), kind="stable")
        return [evidence.sentences[i] for i in order[:k]]


# The baseline every selector must beat: cosine plus half the question's word share.
PICKER_WEIGHTS: dict[str, float] = {"cosine": 1.0, "word_share": 0.5}


@dataclass(frozen=True, slots=True)
class Citation:
    start: int  # the answer span, offsets in the answer
    end: int
    source_id: int
    sentence: str  # the supporting passage sentence, verbatim
    sentence_start: int  # its offsets in that source's text
    sentence_end: int
    support: float  # 0..1


@dataclass(frozen=True, slots=True)
class SupportCheck:
    citations: list[Citation]
    unsupported: list[tuple[int, int]]  # answer spans no passage sentence supports
    checked: int  # answer sentences judged (citation markers alone are not)

    @property
    def supported_share(self) -> float:
        return 1.0 - len(self.unsupported) / self.checked if self.checked else 1.0

    @property
    def grounded(self) -> bool:
        return self.checked > 0 and not self.unsupported


# An answer sentence is supported when some passage sentence reaches this (half cosine, half
# containment of its terms). Models calibrated by bench/grounding.py have their own value in
# app.core.embeddings.MODEL_PROFILES; this is the rest's.
SUPPORT_MIN = 0.6


def support_scores(
    text: str, vector: np.ndarray, evidence: Evidence
) -> np.ndarray:
    """Support of one answer text by each evidence sentence, in 0..1."""
    terms = term_set(text)
    cos = np.clip(evidence.cosines(vector), 0.0, 1.0)
    if terms:
        contained = np.array([len(terms & ts) / len(terms) for ts in evidence.terms])
    else:
        contained = np.zeros(len(evidence))
    return 0.5 * cos + 0.5 * contained


def check_support(
    answer: str,
    evidence: Evidence,
    embedder: SentenceEmbedder,
    threshold: float = SUPPORT_MIN,
) -> SupportCheck:
    """Align each answer sentence with its best-supporting passage sentence."""
    spans = []
    for start, end in split_sentences(answer):
        text = _MARKER.sub(" ", answer[start:end]).strip()
        if any(c.isalnum() for c in text):
            spans.append((start, end, text))
    if not spans:
        return SupportCheck([], [], 0)
    if not len(evidence):
        return SupportCheck([], [(s, e) for s, e, _ in spans], len(spans))
    vectors = unit_rows(embedder.embed_documents([t for _, _, t in spans]))
    citations, unsupported = [], []
    for (start, end, text), vector in zip(spans, vectors):
        scores = support_scores(text, vector, evidence)
        best = int(np.argmax(scores))
        support = float(scores[best])
        if support < threshold:
            unsupported.append((start, end))
            continue
        s = evidence.sentences[best]
        citations.append(
            Citation(start, end, s.source_id, s.text, s.start, s.end, round(support, 3))
        )
    return SupportCheck(citations, unsupported, len(spans))


def quote(sentences: Sequence[EvidenceSentence], prefix: str = "") -> tuple[str, list[Citation]]:
    """An answer made of the sentences verbatim, one citation each (support 1: they are the
    evidence)."""
    citations = []
    answer = prefix + (" " if prefix and sentences else "")
    for s in sentences:
        start = len(answer)
        answer += s.text
        citations.append(Citation(start, len(answer), s.source_id, s.text, s.start, s.end, 1.0))
        answer += " "
    return answer.strip(), citations
