"""How much of an answer the cited passages support: word overlap, cheap and model-free."""

from __future__ import annotations

import re

from app.rag.retrieval import Passage

_CITATION = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"\w+")
# Function words say nothing about support; counting them would flatter any answer.
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the their this to was "
    "were which who with answer".split()
)
# An answer whose content words are at least this much in the cited passages counts as supported.
SUPPORTED_OVERLAP = 0.5


def cited_passages(answer: str, sources: list[Passage]) -> list[Passage]:
    """The passages the answer cites by [n]; all of them when it cites none that exist."""
    cited = {int(n) for n in _CITATION.findall(answer)}
    chosen = [p for n, p in enumerate(sources, start=1) if n in cited]
    return chosen or list(sources)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(_CITATION.sub(" ", text).lower()) if w not in _STOPWORDS}


def token_overlap(answer: str, sources: list[Passage]) -> float:
    """Share of the answer's content words found in the passages it cites (0 with none)."""
    words = content_words(answer)
    passages = cited_passages(answer, sources)
    if not words or not passages:
        return 0.0
    seen = set().union(*(content_words(p.text) for p in passages))
    return round(len(words & seen) / len(words), 3)
