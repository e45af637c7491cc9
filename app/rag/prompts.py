"""The prompt templates: zero-, one- and few-shot chat prompts built with LangChain.

Prompts are data: the system instructions, the message templates and the exemplar bank
(``exemplars.json``, our own text) live here and nowhere else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources

from langchain_core.messages import BaseMessage, convert_to_openai_messages
from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate


class PromptMode(StrEnum):
    zero_shot = "zero_shot"
    one_shot = "one_shot"
    few_shot = "few_shot"


# The one sentence the model is told to give when the passages lack the answer.
REFUSAL = "The answer is not in the documents."

SYSTEM_MESSAGE = (
    "You answer questions using only the numbered passages given with each question.\n"
    "- Use only facts stated in the passages, never outside knowledge.\n"
    "- Answer briefly, in the passage's own words where possible, and cite the passage "
    "you used by its number, like [1].\n"
    f"- If the passages do not contain the answer, reply with exactly this sentence: {REFUSAL}"
)
QUESTION_MESSAGE = "Passages:\n{context}\n\nQuestion: {question}"

# Closed-book: the same model asked with no passages, to measure what retrieval adds.
# It refuses with the same sentence, so is_refusal() scores both sides alike.
CLOSED_BOOK_SYSTEM_MESSAGE = (
    "You answer questions from your own knowledge.\n"
    "- Answer briefly.\n"
    f"- If you do not know the answer, reply with exactly this sentence: {REFUSAL}"
)
CLOSED_BOOK_QUESTION_MESSAGE = "Question: {question}"

SHOTS = {PromptMode.zero_shot: 0, PromptMode.one_shot: 1, PromptMode.few_shot: 4}


@dataclass(frozen=True, slots=True)
class Exemplar:
    passages: list[str]
    question: str
    answer: str

    def as_variables(self) -> dict[str, str]:
        return {
            "context": format_passages(self.passages),
            "question": self.question,
            "answer": self.answer,
        }


def format_passages(texts: list[str], sources: list[str] | None = None) -> str:
    """Number the passages [1], [2], ... in rank order, so the model can cite them."""
    blocks = []
    for n, text in enumerate(texts, start=1):
        label = f"[{n}]" if not sources else f"[{n}] (source: {sources[n - 1]})"
        blocks.append(f"{label}\n{text.strip()}")
    return "\n\n".join(blocks)


@lru_cache
def exemplar_bank() -> tuple[Exemplar, ...]:
    raw = json.loads(resources.files("app.rag").joinpath("exemplars.json").read_text("utf-8"))
    return tuple(Exemplar(**row) for row in raw)


def exemplars_for(mode: PromptMode) -> list[Exemplar]:
    """One shot: the first (answerable) exemplar. Few shot: several, a refusal among them."""
    return list(exemplar_bank()[: SHOTS[mode]])


@lru_cache
def chat_prompt(mode: PromptMode, closed_book: bool = False) -> ChatPromptTemplate:
    system = CLOSED_BOOK_SYSTEM_MESSAGE if closed_book else SYSTEM_MESSAGE
    question_message = CLOSED_BOOK_QUESTION_MESSAGE if closed_book else QUESTION_MESSAGE
    messages: list = [("system", system)]
    shots = exemplars_for(mode)
    if shots:
        examples = [e.as_variables() for e in shots]
        if closed_book:  # the exemplars' answers without their passages and citations
            examples = [{**e, "answer": _CITATION.sub("", e["answer"]).strip()} for e in examples]
        messages.append(
            FewShotChatMessagePromptTemplate(
                examples=examples,
                example_prompt=ChatPromptTemplate.from_messages(
                    [("human", question_message), ("ai", "{answer}")]
                ),
            )
        )
    messages.append(("human", question_message))
    return ChatPromptTemplate.from_messages(messages)


_CITATION = re.compile(r"\s*\[\d+\]")


def render_messages(
    mode: PromptMode, question: str, context: str, *, closed_book: bool = False
) -> list[BaseMessage]:
    """The chat messages for one question; ``closed_book`` asks without passages."""
    if closed_book:
        return chat_prompt(mode, True).format_messages(question=question)
    return chat_prompt(mode).format_messages(context=context, question=question)


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    return convert_to_openai_messages(messages)


_REFUSAL_PATTERNS = re.compile(
    r"not in the (documents|passages)|(documents|passages) do not (contain|say|mention)"
    r"|no information (about|on) this",
    re.IGNORECASE,
)


def is_refusal(answer: str) -> bool:
    """Whether the model gave the refusal sentence (or a close variant of it)."""
    return not answer.strip() or bool(_REFUSAL_PATTERNS.search(answer))
