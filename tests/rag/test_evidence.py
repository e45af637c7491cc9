"""Sentence selection and the support check, with a deterministic embedder (hashed words)."""

from __future__ import annotations

import pytest

from app.rag.evidence import (
    PICKER_WEIGHTS,
    Evidence,
    SentenceSelector,
    check_support,
    passage_sentences,
    quote,
)
from app.rag.retrieval import Passage
from tests.fakes import FakeEmbedder as HashedWords

PASSAGES = [
    Passage(7, "a.txt", "Paris is large. The Eiffel Tower was finished in 1889. It is tall.", 0.6, 1),
    Passage(9, "b.txt", "The Eiffel Tower was finished in 1889. Lyon is a city.", 0.4, 2),
]


def test_sentences_keep_offsets_and_drop_repeats():
    found = passage_sentences(PASSAGES)
    texts = [s.text for s in found]
    assert texts.count("The Eiffel Tower was finished in 1889.") == 1
    for s in found:
        source = next(p for p in PASSAGES if p.id == s.source_id)
        assert source.text[s.start:s.end] == s.text


def test_questions_and_headings_are_not_evidence():
    faq = Passage(3, "faq.md", "# FAQ\n\nDoes ragqa need a GPU? No, it runs on the CPU.", 0.9, 1)
    korean = Passage(4, "faq-ko.md", "한국어 질문도 되나요? 네, 한국어 질문도 됩니다.", 0.8, 2)
    texts = [s.text for s in passage_sentences([faq, korean])]
    assert texts == ["No, it runs on the CPU.", "네, 한국어 질문도 됩니다."]


@pytest.mark.parametrize("weights", [None, PICKER_WEIGHTS])
def test_selector_picks_the_answering_sentence(weights):
    evidence = Evidence.build("When was the Eiffel Tower finished?", PASSAGES, HashedWords())
    best = SentenceSelector(weights).select(evidence, 1)
    assert best[0].text == "The Eiffel Tower was finished in 1889."
    assert best[0].source_id == 7  # where it ranks best


def test_empty_passages_give_no_evidence_and_an_unsupported_answer():
    evidence = Evidence.build("Anything?", [Passage(1, "e.txt", "", 0.1, 1)], HashedWords())
    assert len(evidence) == 0 and SentenceSelector().select(evidence, 2) == []
    check = check_support("It was 1889.", evidence, HashedWords())
    assert check.unsupported == [(0, 12)] and not check.grounded


def test_support_check_cites_and_flags():
    embedder = HashedWords()
    evidence = Evidence.build("When was it finished?", PASSAGES, embedder)
    answer = "The Eiffel Tower was finished in 1889 [1]. Bananas grow on the moon."
    check = check_support(answer, evidence, embedder)
    assert len(check.citations) == 1 and check.checked == 2
    c = check.citations[0]
    assert answer[c.start:c.end].startswith("The Eiffel Tower")
    assert c.sentence == "The Eiffel Tower was finished in 1889." and 0 < c.support <= 1
    assert PASSAGES[0].text[c.sentence_start:c.sentence_end] == c.sentence
    (start, end), = check.unsupported
    assert answer[start:end] == "Bananas grow on the moon."
    assert check.supported_share == 0.5 and not check.grounded


def test_an_answer_of_only_a_marker_is_not_judged():
    evidence = Evidence.build("q", PASSAGES, HashedWords())
    check = check_support("[1]", evidence, HashedWords())
    assert check.checked == 0 and check.unsupported == [] and not check.grounded


def test_quote_cites_each_sentence_verbatim():
    evidence = Evidence.build("When was the tower finished?", PASSAGES, HashedWords())
    chosen = SentenceSelector().select(evidence, 2)
    answer, citations = quote(chosen, prefix="Quoted:")
    assert answer.startswith("Quoted: ")
    for c, s in zip(citations, chosen):
        assert answer[c.start:c.end] == s.text and c.support == 1.0
