"""The language of a question, and the fixed sentences ragqa says in it.

ragqa's users write English and Korean, so two languages are told apart, by script: a text
whose letters are at least ``KOREAN_QUESTION_SHARE`` Hangul is Korean. A Korean question that
names an English term ("ragqa는 GPU가 필요한가요?") still counts as Korean.
"""

from __future__ import annotations

from enum import StrEnum

from app.core.lexical import hangul_share


class Language(StrEnum):
    en = "en"
    ko = "ko"


KOREAN_QUESTION_SHARE = 0.3
# A Korean answer quotes names and numbers in Latin script; a fifth of Hangul letters is
# already unmistakably Korean prose, and an English answer has none.
KOREAN_ANSWER_SHARE = 0.2

REFUSALS: dict[Language, str] = {
    Language.en: "The answer is not in the documents.",
    Language.ko: "문서에 답이 없습니다.",
}
# Added to the system prompt for non-English questions; English prompts stay as they are.
ANSWER_IN: dict[Language, str] = {
    Language.ko: "Write the answer in Korean (한국어로 답하세요).",
}
# Put before a quote whose sentences are not in the question's language.
QUOTED_FROM: dict[Language, str] = {
    Language.en: "The documents answer this in another language; their words are quoted below.",
    Language.ko: "문서의 관련 문장을 원문 그대로 인용합니다.",
}


def language_of(text: str) -> Language:
    return Language.ko if hangul_share(text) >= KOREAN_QUESTION_SHARE else Language.en


def refusal_for(question: str) -> str:
    return REFUSALS[language_of(question)]


def is_in_language(text: str, language: Language) -> bool:
    """Whether ``text`` is written in ``language`` (a text with no letters counts as any)."""
    if not any(c.isalpha() for c in text):
        return True
    share = hangul_share(text)
    if language is Language.ko:
        return share >= KOREAN_ANSWER_SHARE
    return share < KOREAN_ANSWER_SHARE
