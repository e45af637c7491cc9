"""The prompt templates: zero-, one- and few-shot chat prompts built with LangChain.

Prompts are data: the system instructions, the message templates and the exemplar bank
(``exemplars.json``, our own text) live here and nowhere else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from langchain_core.messages import BaseMessage, convert_to_openai_messages
from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate

from app.rag.language import ANSWER_IN, language_of
from app.rag.modes import PromptMode, Strategy

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
# step_back: the answer prompt shows the general question beside the original one.
STEP_BACK_QUESTION_MESSAGE = (
    "Passages:\n{context}\n\nBackground question: {step_back_question}\nQuestion: {question}"
)
# cot, stage 1 (Kojima et al.): the trigger that elicits reasoning.
COT_TRIGGER = "Let's think step by step."
# cot, stage 2: extract the final answer from the reasoning.
COT_EXTRACT_MESSAGE = (
    "Therefore, the answer (a few words from the passages with the passage number, "
    f"or the sentence \"{REFUSAL}\") is:"
)

# closed_book: no passages, the model's own knowledge only.
CLOSED_BOOK_REFUSAL = "I do not know."
CLOSED_BOOK_SYSTEM_MESSAGE = (
    "You answer questions from your own knowledge.\n"
    "- Answer briefly, in a few words.\n"
    f"- If you do not know the answer, reply with exactly this sentence: {CLOSED_BOOK_REFUSAL}"
)
CLOSED_BOOK_QUESTION_MESSAGE = "Question: {question}"

# step_back, stage 1: write the more general question, shown how by its own exemplars.
STEP_BACK_SYSTEM_MESSAGE = (
    "You rewrite a specific question as a more general step-back question about the "
    "background needed to answer it. Reply with the step-back question only, on one line."
)
STEP_BACK_ASK_MESSAGE = "Question: {question}"

# Fixed selection: how many exemplars each mode takes from the top of the bank.
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


@lru_cache
def step_back_exemplar_bank() -> tuple[dict[str, str], ...]:
    raw = resources.files("app.rag").joinpath("step_back_exemplars.json").read_text("utf-8")
    return tuple(json.loads(raw))


def shot_count(mode: PromptMode, shots: int | None = None) -> int:
    """Exemplars a mode takes: ``shots`` overrides the few-shot default."""
    if mode is PromptMode.few_shot and shots is not None:
        return shots
    return SHOTS[mode]


def exemplars_for(mode: PromptMode, shots: int | None = None) -> list[Exemplar]:
    """Fixed selection. One shot: the first (answerable) exemplar. Few shot: the first k."""
    return list(exemplar_bank()[: shot_count(mode, shots)])


def _exemplar_messages(exemplars: list[Exemplar]) -> list:
    if not exemplars:
        return []
    return [
        FewShotChatMessagePromptTemplate(
            examples=[e.as_variables() for e in exemplars],
            example_prompt=ChatPromptTemplate.from_messages(
                [("human", QUESTION_MESSAGE), ("ai", "{answer}")]
            ),
        )
    ]


def answer_prompt(
    exemplars: list[Exemplar], strategy: Strategy = Strategy.direct
) -> ChatPromptTemplate:
    """System instructions, the exemplar turns, then the question in the strategy's form."""
    final = STEP_BACK_QUESTION_MESSAGE if strategy is Strategy.step_back else QUESTION_MESSAGE
    if strategy is Strategy.cot:
        final += "\n\n" + COT_TRIGGER
    return ChatPromptTemplate.from_messages(
        [("system", SYSTEM_MESSAGE), *_exemplar_messages(exemplars), ("human", final)]
    )


@lru_cache
def chat_prompt(mode: PromptMode) -> ChatPromptTemplate:
    return answer_prompt(exemplars_for(mode))


def render_messages(
    mode: PromptMode,
    question: str,
    context: str,
    *,
    exemplars: list[Exemplar] | None = None,
    strategy: Strategy = Strategy.direct,
    step_back_question: str = "",
) -> list[BaseMessage]:
    """The answer prompt; ``exemplars`` (chosen per question) replaces the mode's fixed ones.
    A question in another language than English asks for the answer in that language."""
    if exemplars is None and strategy is Strategy.direct:
        messages = chat_prompt(mode).format_messages(context=context, question=question)
    else:
        prompt = answer_prompt(exemplars if exemplars is not None else exemplars_for(mode), strategy)
        variables = {"context": context, "question": question}
        if strategy is Strategy.step_back:
            variables["step_back_question"] = step_back_question
        messages = prompt.format_messages(**variables)
    instruction = ANSWER_IN.get(language_of(question))
    if instruction:
        system = messages[0]
        messages[0] = system.model_copy(update={"content": f"{system.content}\n- {instruction}"})
    return messages


def cot_extract_messages(
    reasoning_prompt: list[dict[str, str]], reasoning: str
) -> list[dict[str, str]]:
    """Kojima et al.'s second stage: the first prompt, the reasoning, then the extraction cue."""
    return [
        *reasoning_prompt,
        {"role": "assistant", "content": reasoning},
        {"role": "user", "content": COT_EXTRACT_MESSAGE},
    ]


@lru_cache
def step_back_prompt() -> ChatPromptTemplate:
    shots = FewShotChatMessagePromptTemplate(
        examples=list(step_back_exemplar_bank()),
        example_prompt=ChatPromptTemplate.from_messages(
            [("human", STEP_BACK_ASK_MESSAGE), ("ai", "{step_back_question}")]
        ),
    )
    return ChatPromptTemplate.from_messages(
        [("system", STEP_BACK_SYSTEM_MESSAGE), shots, ("human", STEP_BACK_ASK_MESSAGE)]
    )


def render_step_back_messages(question: str) -> list[BaseMessage]:
    return step_back_prompt().format_messages(question=question)


@lru_cache
def closed_book_prompt() -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages(
        [("system", CLOSED_BOOK_SYSTEM_MESSAGE), ("human", CLOSED_BOOK_QUESTION_MESSAGE)]
    )


def render_closed_book_messages(question: str) -> list[BaseMessage]:
    return closed_book_prompt().format_messages(question=question)


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    return convert_to_openai_messages(messages)


_REFUSAL_PATTERNS = re.compile(
    r"not in the (documents|passages)|(documents|passages) do not (contain|say|mention)"
    r"|no information (about|on) this|\bI do(n't| not) know\b|문서에 (답|정보)이 없|모르겠습니다",
    re.IGNORECASE,
)

# Lead-ins small models put before the answer itself ("Therefore, the answer is: ...").
_ANSWER_LEAD_IN = re.compile(
    r"^\s*(?:(?:so|therefore|thus),?\s+)?(?:the\s+)?(?:final\s+)?answer\b\s*(?:is\b\s*:?|:)\s*",
    re.IGNORECASE,
)


def extract_answer(text: str) -> str:
    """The answer proper from a reply: its first non-empty line without an "answer is" lead-in
    (the next line when the lead-in stands alone), or the refusal sentence if it refuses."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if is_refusal(line):  # "The answer is not in the documents." stays whole
            return REFUSAL
        answer = _ANSWER_LEAD_IN.sub("", line, count=1).strip().strip("\"'")
        if answer:
            return answer
    return lines[0] if lines else ""


def clean_step_back_question(text: str) -> str:
    """The first line of the model's reply, without a "Question:" label."""
    line = next((line.strip() for line in text.strip().splitlines() if line.strip()), "")
    return re.sub(r"^(step-back )?question\s*:\s*", "", line, flags=re.IGNORECASE).strip()


def is_refusal(answer: str) -> bool:
    """Whether the model gave the refusal sentence (or a close variant of it)."""
    return not answer.strip() or bool(_REFUSAL_PATTERNS.search(answer))
