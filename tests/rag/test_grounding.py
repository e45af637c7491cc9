"""The grounding stage: keep, flag, quote or refuse; the question's language decides the rest."""

from __future__ import annotations

import pytest

from app.rag.grounding import AnswerSource, Grounder, UnsupportedAnswer
from app.rag.language import QUOTED_FROM, REFUSALS, Language
from app.rag.retrieval import Passage
from tests.rag.test_evidence import PASSAGES, HashedWords

KOREAN = [Passage(3, "mailbox.txt", "한국의 우체통은 빨간색입니다. 예전에는 초록색이기도 했습니다.", 0.5, 1)]


def grounder(policy=UnsupportedAnswer.flag, **kw) -> Grounder:
    return Grounder(HashedWords(), on_unsupported=policy, **kw)


def test_a_supported_answer_is_kept_with_citations():
    g = grounder().run("When was it finished?", PASSAGES, "The Eiffel Tower was finished in 1889.")
    assert g.answer_source is AnswerSource.generated and g.grounded and not g.refused
    assert g.citations[0].source_id == 7 and g.supported_share == 1.0


@pytest.mark.parametrize("policy", list(UnsupportedAnswer))
def test_an_unsupported_answer_follows_the_policy(policy):
    answer = "Bananas grow on the moon."
    g = grounder(policy).run("When was the Eiffel Tower finished?", PASSAGES, answer)
    assert not g.grounded or g.answer_source is AnswerSource.quoted
    if policy is UnsupportedAnswer.flag:
        assert g.answer == answer and g.unsupported == [(0, len(answer))]
        assert g.answer_source is AnswerSource.generated
    elif policy is UnsupportedAnswer.quote:
        assert g.answer_source is AnswerSource.quoted and g.replaced == "unsupported"
        assert "1889" in g.answer and all(c.support == 1.0 for c in g.citations)
    else:
        assert g.refused and g.answer == REFUSALS[Language.en]


def test_refusal_is_in_the_question_language():
    g = grounder().run("우체통은 무슨 색인가요?", KOREAN, "The answer is not in the documents.")
    assert g.refused and g.answer == REFUSALS[Language.ko] and g.language is Language.ko


def test_english_answer_to_a_korean_question_becomes_a_quote():
    g = grounder().run("우체통은 무슨 색인가요?", KOREAN, "The service is started with ragqa serve.")
    assert g.answer_source is AnswerSource.quoted and g.replaced == "language"
    assert "빨간색" in g.answer and not g.answer.startswith(QUOTED_FROM[Language.ko])


def test_a_quote_in_another_language_says_so():
    g = grounder().quote("우체통은 무슨 색인가요?", PASSAGES)
    assert g.answer.startswith(QUOTED_FROM[Language.ko])
    for c in g.citations:
        assert g.answer[c.start:c.end] == c.sentence


def test_no_evidence_above_min_relevance_refuses_even_extractive():
    g = grounder(min_relevance=0.9).quote("When was it finished?", PASSAGES)
    assert g.refused


def test_answer_of_only_a_marker_is_not_grounded():
    g = grounder().run("When?", PASSAGES, "[1]")
    assert g.answer_source is AnswerSource.generated and not g.grounded
    assert g.supported_share is None


def test_a_quote_far_from_the_question_is_a_refusal():
    question = "When was the Eiffel Tower finished?"
    evidence = grounder().evidence(question, PASSAGES)
    quoted = grounder().quote(question, PASSAGES)
    first = next(s for s in evidence.sentences if s.text == quoted.citations[0].sentence)
    cosine = evidence.question_cosine(first)
    assert grounder(quote_min_score=cosine - 0.01).quote(question, PASSAGES).answer_source is AnswerSource.quoted
    assert grounder(quote_min_score=cosine + 0.01).quote(question, PASSAGES).refused


def test_the_quote_threshold_also_holds_for_a_replaced_answer():
    g = grounder(UnsupportedAnswer.quote, quote_min_score=1.0).run(
        "When was the Eiffel Tower finished?", PASSAGES, "Bananas grow on the moon."
    )
    assert g.refused and g.answer == REFUSALS[Language.en]
