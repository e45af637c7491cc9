"""The last stage of every answer: hold it to the evidence, sentence by sentence.

A generated answer is checked against the passage sentences (``app.rag.evidence``). What then
happens to an answer that the passages do not support is a setting
(``RAGQA_UNSUPPORTED_ANSWER``): keep it flagged, quote the evidence instead, or refuse. An
answer not in the question's language is replaced by a quote. In extractive mode nothing is
generated: the answer is the best evidence sentences, quoted verbatim.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from app.core.embeddings import MODEL_PROFILES, thresholds_for
from app.core.sentence_vectors import ChunkSentences, sentence_texts, unit_rows
from app.core.sentences import split_sentences
from app.rag.evidence import (
    SUPPORT_MIN,
    Citation,
    Evidence,
    SentenceEmbedder,
    SentenceSelector,
    check_support,
    quote,
)
from app.rag.language import QUOTED_FROM, Language, is_in_language, language_of, refusal_for
from app.rag.prompts import is_refusal
from app.rag.retrieval import Passage


class UnsupportedAnswer(StrEnum):
    """What to do with a generated answer that the passages do not support."""

    flag = "flag"  # keep it, grounded false, with the unsupported spans marked
    quote = "quote"  # answer with the best evidence sentences instead
    refuse = "refuse"  # answer with the refusal sentence


class AnswerSource(StrEnum):
    generated = "generated"
    quoted = "quoted"
    refused = "refused"


# Extractive answers quote this many sentences (bench/extractive.py measures 1 and 2).
QUOTE_SENTENCES = 2

# The support threshold belongs to the embedding model whose cosines it compares (half of the
# score): app.core.embeddings.MODEL_PROFILES holds it with the model's other thresholds
# (docs/grounding.md, docs/retrieval.md). Others: SUPPORT_MIN.
SUPPORT_MIN_BY_MODEL: dict[str, float] = {
    model: profile.support_min_score
    for model, profile in MODEL_PROFILES.items()
    if profile.support_min_score is not None
}


def support_min_for(model_id: str) -> float:
    return SUPPORT_MIN_BY_MODEL.get(model_id, SUPPORT_MIN)


@dataclass(frozen=True, slots=True)
class Grounding:
    answer: str
    answer_source: AnswerSource
    grounded: bool
    language: Language
    citations: list[Citation] = field(default_factory=list)
    unsupported: list[tuple[int, int]] = field(default_factory=list)
    supported_share: float | None = None  # of the generated answer's sentences; None if none
    # Why a generated answer was replaced: "unsupported" or "language"; None if it was not.
    replaced: str | None = None

    @property
    def refused(self) -> bool:
        return self.answer_source is AnswerSource.refused


class SentenceVectorCache:
    """Sentence vectors by text, bounded: the passages of popular questions repeat."""

    def __init__(self, embedder: SentenceEmbedder, size: int = 20_000):
        self.embedder = embedder
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        fresh = self.embedder.embed_documents(missing) if missing else []
        with self._lock:
            for text, vector in zip(missing, fresh):
                self._vectors[text] = np.asarray(vector, dtype=np.float32)
            rows = [self._vectors[t] for t in texts]
            for text in texts:
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_query(text)


class Grounder:
    """Turns (question, passages, generated answer or none) into the answer a user reads.
    CPU-bound (it embeds sentences): call it from a worker thread."""

    def __init__(
        self,
        embedder: SentenceEmbedder,
        *,
        on_unsupported: UnsupportedAnswer = UnsupportedAnswer.flag,
        support_min: float = SUPPORT_MIN,
        min_relevance: float = -1.0,
        quote_sentences: int = QUOTE_SENTENCES,
        selector: SentenceSelector | None = None,
        refusal_min_score: float = -1.0,
        quote_min_score: float = -1.0,
    ):
        self.embedder = SentenceVectorCache(embedder)
        # Below this best retrieved relevance the pipeline refuses without asking the LLM.
        self.refusal_min_score = refusal_min_score
        # A quote whose first sentence is further than this from the question is not given.
        self.quote_min_score = quote_min_score
        self.on_unsupported = on_unsupported
        self.support_min = support_min
        self.min_relevance = min_relevance
        self.quote_sentences = quote_sentences
        self.selector = selector or SentenceSelector()

    @classmethod
    def from_settings(cls, settings, embedder) -> Grounder:
        """The settings' grounder for collections of ``embedder``'s model: each cosine threshold
        as set explicitly, else that model's default."""
        thresholds = thresholds_for(settings, embedder.model_id)
        support_min = thresholds.support_min_score
        return cls(
            embedder,
            on_unsupported=UnsupportedAnswer(settings.unsupported_answer),
            support_min=support_min_for(embedder.model_id) if support_min is None else support_min,
            min_relevance=thresholds.min_relevance,
            quote_sentences=settings.quote_sentences,
            refusal_min_score=thresholds.refusal_min_score,
            quote_min_score=thresholds.quote_min_score,
        )

    def refusal(self, question: str) -> Grounding:
        return Grounding(refusal_for(question), AnswerSource.refused, False, language_of(question))

    def evidence(self, question: str, passages: Sequence[Passage]) -> Evidence:
        return Evidence.build(question, passages, self.embedder)

    def quote(
        self, question: str, passages: Sequence[Passage], evidence: Evidence | None = None,
        replaced: str | None = None,
    ) -> Grounding:
        """The best evidence sentences, verbatim; a refusal when there is no evidence."""
        if not self.has_evidence(passages):
            return self.refusal(question)
        evidence = evidence or self.evidence(question, passages)
        chosen = self.selector.select(evidence, self.quote_sentences)
        if not chosen or evidence.question_cosine(chosen[0]) < self.quote_min_score:
            return self.refusal(question)
        language = language_of(question)
        quoted_text = " ".join(s.text for s in chosen)
        prefix = "" if is_in_language(quoted_text, language) else QUOTED_FROM[language]
        answer, citations = quote(chosen, prefix)
        return Grounding(
            answer, AnswerSource.quoted, True, language, citations, replaced=replaced
        )

    def run(self, question: str, passages: Sequence[Passage], generated: str) -> Grounding:
        """Check a generated answer; keep, flag, quote or refuse it."""
        language = language_of(question)
        if is_refusal(generated) or not self.has_evidence(passages):
            return self.refusal(question)
        evidence = self.evidence(question, passages)
        if not is_in_language(generated, language):
            return self.quote(question, passages, evidence, replaced="language")
        check = check_support(generated, evidence, self.embedder, self.support_min)
        share = round(check.supported_share, 3) if check.checked else None
        if check.grounded or self.on_unsupported is UnsupportedAnswer.flag:
            return Grounding(
                generated, AnswerSource.generated, check.grounded, language,
                check.citations, check.unsupported, share,
            )
        if self.on_unsupported is UnsupportedAnswer.quote:
            return self.quote(question, passages, evidence, replaced="unsupported")
        return self.refusal(question)

    def support_of(self, answer: str, question: str, passages: Sequence[Passage]):
        """The support check alone (for a closed-book answer compared with the passages)."""
        return check_support(answer, self.evidence(question, passages), self.embedder, self.support_min)

    def has_evidence(self, passages: Sequence[Passage]) -> bool:
        """Some passage reaches RAGQA_MIN_RELEVANCE: the one test of "there is evidence"."""
        return any(p.relevance >= self.min_relevance for p in passages)

    def with_sentence_scores(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """The passages with their best sentence's cosine (``Passage.relevance``), for a
        collection that stores no sentence vectors (written before they were): its passages'
        sentences are embedded here, through the cache, and carried on to the evidence stage."""
        spans = [split_sentences(p.text) if p.sentences is None else [] for p in passages]
        texts = [t for p, own in zip(passages, spans) for t in sentence_texts(p.text, own)]
        if not texts:
            return list(passages)
        vectors = iter(unit_rows(self.embedder.embed_documents(texts)))
        query = unit_rows(np.asarray(self.embedder.embed_query(question), dtype=np.float32))
        out = []
        for p, own in zip(passages, spans):
            if not own:
                out.append(p)
                continue
            rows = np.stack([next(vectors) for _ in own])
            out.append(
                replace(p, sentences=ChunkSentences.of(own, rows), sentence_score=float((rows @ query).max()))
            )
        return out
