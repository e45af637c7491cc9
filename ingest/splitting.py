"""Splitting document text into chunks that remember where they start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from app.core.store import HEADER_RULES, SplitterInfo

# Paragraphs, lines, then sentence ends, then words; characters only as a last resort.
# A sentence ends at . ? ! (also full-width, and Korean 다. 요. alike), optionally followed by a
# closing quote or bracket, then whitespace. Lookbehinds keep the punctuation with its sentence.
_CLOSERS = "\"'”’」』)）"
_SENTENCE_END = r"(?<=[.?!。？！])\s+|(?<=[.?!。？！][" + re.escape(_CLOSERS) + r"])\s+"
SEPARATORS = [r"\n\s*\n", r"\n", _SENTENCE_END, r"(?<=[。？！])", r"\s+", ""]


@dataclass(frozen=True, slots=True)
class TextPiece:
    start: int
    text: str


class TextSplitter:
    def __init__(self, chunk_size: int, chunk_overlap: int, header: str | None = None):
        """``header``: the chunk header rule (app/core/store.py, HEADER_RULES), None for none."""
        if header is not None and header not in HEADER_RULES:
            raise ValueError(f"unknown chunk header rule {header!r}; use one of {', '.join(HEADER_RULES)}")
        self.info = SplitterInfo(
            name="recursive_sentences/2", chunk_size=chunk_size, chunk_overlap=chunk_overlap, header=header
        )

    @cached_property
    def _splitter(self):
        # Imported on first use: a re-ingest with nothing to split never pays for LangChain.
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        info = self.info
        return RecursiveCharacterTextSplitter(
            chunk_size=info.chunk_size,
            chunk_overlap=info.chunk_overlap,
            separators=SEPARATORS,
            is_separator_regex=True,
            keep_separator="end",
            add_start_index=True,
            strip_whitespace=True,
        )

    @classmethod
    def from_info(cls, info: SplitterInfo) -> TextSplitter:
        return cls(info.chunk_size, info.chunk_overlap, info.header)

    def split(self, text: str) -> list[TextPiece]:
        docs = self._splitter.create_documents([text])
        return [TextPiece(d.metadata["start_index"], d.page_content) for d in docs]
