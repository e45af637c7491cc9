"""Chunks end at sentence boundaries, Korean ones included, and never cut inside a word."""

from __future__ import annotations

import re

from ingest.splitting import TextSplitter

KOREAN = (
    "서울은 대한민국의 수도이다. 인구는 약 940만 명이에요. 정말 큰 도시일까? 그렇다! "
    "한강이 도시 가운데를 흐른다. 그는 \"서울이 좋다.\" 라고 말했다. "
) * 8


def _check_offsets(text, pieces):
    for piece in pieces:
        assert text[piece.start : piece.start + len(piece.text)] == piece.text


def test_korean_chunks_end_at_sentence_ends():
    pieces = TextSplitter(120, 20).split(KOREAN)
    assert len(pieces) > 3
    _check_offsets(KOREAN, pieces)
    for piece in pieces:
        assert re.search(r"(다\.|요\.|\?|!|\.\")$", piece.text), piece.text
        assert len(piece.text) <= 120


def test_no_cut_inside_a_hangul_word():
    # One long sentence without sentence ends: the splitter falls back to spaces, not syllables.
    text = " ".join(["가나다라마바사"] * 60)
    pieces = TextSplitter(100, 0).split(text)
    _check_offsets(text, pieces)
    for piece in pieces:
        assert all(word == "가나다라마바사" for word in piece.text.split()), piece.text


def test_english_sentences_and_paragraphs_still_split():
    text = "First paragraph here. It has two sentences.\n\n" + "Second one? Yes! " * 20
    pieces = TextSplitter(100, 0).split(text)
    _check_offsets(text, pieces)
    assert pieces[0].text == "First paragraph here. It has two sentences."
    assert all(p.text.endswith((".", "?", "!")) for p in pieces)
