"""Splitting document text into chunks that remember where they start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from app.core.store import SplitterInfo

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
    def __init__(self, chunk_size: int, chunk_overlap: int):
        self.info = SplitterInfo(
            name="recursive_sentences/2", chunk_size=chunk_size, chunk_overlap=chunk_overlap
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
        return cls(info.chunk_size, info.chunk_overlap)

    def split(self, text: str) -> list[TextPiece]:
        docs = self._splitter.create_documents([text])
        return [TextPiece(d.metadata["start_index"], d.page_content) for d in docs]
