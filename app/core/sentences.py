"""Sentence spans of a text: pysbd for English and other Latin-script text, kiwipiepy for Korean.

A span is ``(start, end)`` character offsets into the text given, with surrounding whitespace
trimmed, so ``text[start:end]`` is the sentence exactly as the document has it. Line breaks
always end a sentence (headings, list items and table rows carry no full stop), and a sentence
longer than ``MAX_SENTENCE_CHARS`` is cut at the last space before that length, so no span is
unbounded whatever the input.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from app.core.lexical import is_korean, korean_sentence_spans

# Recorded beside stored sentence spans, so a change of rules is seen as a change.
SENTENCE_SPLITTER = "pysbd-kiwi/1"
MAX_SENTENCE_CHARS = 600

Span = tuple[int, int]

_LINE = re.compile(r"[^\n]+")
_pysbd_lock = threading.Lock()


@lru_cache(maxsize=1)
def _english_segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def _latin_spans(line: str) -> list[Span]:
    with _pysbd_lock:  # pysbd keeps per-call state on the segmenter
        spans = _english_segmenter().segment(line)
    return [(s.start, s.end) for s in spans]


def _trimmed(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _cut_long(text: str, start: int, end: int) -> list[Span]:
    spans = []
    while end - start > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", start + 1, start + MAX_SENTENCE_CHARS)
        if cut <= start:
            cut = start + MAX_SENTENCE_CHARS
        spans.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        spans.append((start, end))
    return spans


@lru_cache(maxsize=8192)
def split_sentences(text: str) -> tuple[Span, ...]:
    """Sentence spans of ``text`` in order; none for empty or blank text. Cached: the same
    passages come back for many questions, and pysbd costs milliseconds per passage."""
    spans: list[Span] = []
    for line in _LINE.finditer(text):
        offset = line.start()
        body = line.group()
        if not body.strip():
            continue
        try:
            pieces = korean_sentence_spans(body) if is_korean(body) else _latin_spans(body)
        except Exception:  # a splitter failing on odd input must not fail the answer
            pieces = [(0, len(body))]
        covered = 0
        for start, end in sorted(pieces):
            start = max(start, covered)
            if end <= start:
                continue
            covered = end
            trimmed = _trimmed(text, offset + start, offset + end)
            if trimmed:
                spans.extend(_cut_long(text, *trimmed))
    return tuple(spans)


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]
