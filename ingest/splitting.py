"""Splitting document text into chunks that remember where they start."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from app.core.store import SplitterInfo

# Paragraphs, lines, then sentence ends (Latin and CJK), then words.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "다. ", "。", " ", ""]


@dataclass(frozen=True, slots=True)
class TextPiece:
    start: int
    text: str


class TextSplitter:
    def __init__(self, chunk_size: int, chunk_overlap: int):
        self.info = SplitterInfo(
            name="recursive_character", chunk_size=chunk_size, chunk_overlap=chunk_overlap
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
