"""Sentence spans: offsets into the text, Korean by kiwi, bounded length, odd input."""

from __future__ import annotations

import pytest

from app.core.sentences import MAX_SENTENCE_CHARS, sentences, split_sentences


def test_spans_are_offsets_into_the_text():
    text = "  Dr. Smith went to Washington. He arrived at 5 p.m. yesterday!\nNext line"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Dr. Smith went to Washington.",
        "He arrived at 5 p.m. yesterday!",
        "Next line",
    ]


def test_korean_sentences_end_at_korean_endings():
    text = "ragqa는 한국어 문서를 검색합니다. 형태소 분석기를 씁니다 그리고 BM25로 찾아요"
    found = sentences(text)
    assert found[0] == "ragqa는 한국어 문서를 검색합니다."
    assert len(found) >= 2 and "".join(found).replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "....", "[1]"])
def test_blank_or_punctuation_only_text_gives_a_defined_result(text):
    spans = split_sentences(text)
    assert all(text[s:e].strip() for s, e in spans)


def test_no_boundary_and_very_long_sentences_are_cut():
    text = "word " * 1000 + "x" * 1500
    spans = split_sentences(text)
    assert len(spans) > 3
    assert max(e - s for s, e in spans) <= MAX_SENTENCE_CHARS
    assert text[spans[-1][0]:spans[-1][1]].endswith("x")


def test_mixed_scripts_in_one_line():
    text = "Seoul (서울) is the capital. 서울은 한국의 수도입니다. It has 9.4 million people."
    spans = split_sentences(text)
    assert spans and all(0 <= s < e <= len(text) for s, e in spans)
