"""The rendered messages of each strategy, answer extraction, merging, exemplar picking."""

from __future__ import annotations

import re

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from app.rag.pipeline import merge_passages
from app.rag.prompts import (
    CLOSED_BOOK_REFUSAL,
    COT_EXTRACT_MESSAGE,
    COT_TRIGGER,
    REFUSAL,
    PromptMode,
    Strategy,
    clean_step_back_question,
    cot_extract_messages,
    exemplar_bank,
    extract_answer,
    format_passages,
    is_refusal,
    render_closed_book_messages,
    render_messages,
    render_step_back_messages,
    step_back_exemplar_bank,
    to_openai_messages,
)
from app.rag.retrieval import Passage
from app.rag.shots import ExemplarSelector

CONTEXT = format_passages(["Omega is the last letter.", "Alpha is the first."], ["a.txt", "b.txt"])
QUESTION = "Which letter is last?"


def render(mode=PromptMode.one_shot, **kwargs) -> list[dict[str, str]]:
    return to_openai_messages(render_messages(mode, QUESTION, CONTEXT, **kwargs))


def test_exemplar_bank_is_ours_and_large_enough():
    bank = exemplar_bank()
    assert len(bank) >= 12
    assert sum(e.answer == REFUSAL for e in bank) >= 3
    assert not is_refusal(bank[0].answer)  # one_shot's fixed exemplar shows a real answer
    assert len({e.question for e in bank}) == len(bank)


@pytest.mark.parametrize("mode", list(PromptMode))
def test_cot_asks_to_think_step_by_step_in_the_final_turn(mode):
    messages = render(mode, strategy=Strategy.cot)
    assert messages[-1]["content"].endswith(f"Question: {QUESTION}\n\n{COT_TRIGGER}")
    # the exemplar turns stay plain: only the question at hand carries the trigger
    assert all(COT_TRIGGER not in m["content"] for m in messages[:-1])
    assert messages[:-1] == render(mode)[:-1]


def test_cot_second_stage_holds_the_reasoning_then_asks_for_the_answer():
    first = render(strategy=Strategy.cot)
    second = cot_extract_messages(first, "Passage [1] says Omega is last.")
    assert second[: len(first)] == first
    assert second[-2] == {"role": "assistant", "content": "Passage [1] says Omega is last."}
    assert second[-1] == {"role": "user", "content": COT_EXTRACT_MESSAGE}


@pytest.mark.parametrize(
    "reply, answer",
    [
        ("Therefore, the answer is: Omega [1]", "Omega [1]"),
        ("The answer is 412 metres [1].\nBecause the passage says so.", "412 metres [1]."),
        ("So the final answer is \"Old Tom\"", "Old Tom"),
        ("Answer: 1987 [1]", "1987 [1]"),
        ("\n\n  Omega [1]\n", "Omega [1]"),
        ("The answers differ by year.", "The answers differ by year."),  # no lead-in: kept
        ("The answer is:\nScott and Duncan [2].", "Scott and Duncan [2]."),  # lead-in alone on its line
        ("The answer is:", "The answer is:"),  # nothing after it: the line as it came
        ("", ""),
    ],
)
def test_extract_answer_from_a_reasoning_reply(reply, answer):
    assert extract_answer(reply) == answer


def test_extracted_refusal_is_the_refusal_sentence():
    assert extract_answer(f"Therefore, the answer is: {REFUSAL}") == REFUSAL
    # seen with SmolLM2: the lead-in stripped from the refusal left "not in the documents."
    assert extract_answer("The answer is not in the documents.") == REFUSAL


def test_step_back_answer_prompt_shows_both_questions():
    messages = render(PromptMode.zero_shot, strategy=Strategy.step_back, step_back_question="What is the Greek alphabet?")
    assert [m["role"] for m in messages] == ["system", "user"]
    final = messages[-1]["content"]
    assert "Background question: What is the Greek alphabet?" in final
    assert final.endswith(f"Question: {QUESTION}")
    assert "[1] (source: a.txt)" in final


def test_step_back_question_prompt_has_its_own_exemplars():
    messages = to_openai_messages(render_step_back_messages(QUESTION))
    shots = step_back_exemplar_bank()
    assert len(shots) >= 3
    assert messages[0]["role"] == "system" and "step-back" in messages[0]["content"]
    pairs = messages[1:-1]
    assert [m["role"] for m in pairs] == ["user", "assistant"] * len(shots)
    assert [m["content"] for m in pairs[1::2]] == [s["step_back_question"] for s in shots]
    assert messages[-1] == {"role": "user", "content": f"Question: {QUESTION}"}
    # no passages: the step-back question is written before anything is retrieved
    assert all("Passages:" not in m["content"] for m in messages)


@pytest.mark.parametrize(
    "reply, question",
    [("Question: What is X?", "What is X?"), ("What is X?\nmore text", "What is X?"), ("  ", "")],
)
def test_clean_step_back_question(reply, question):
    assert clean_step_back_question(reply) == question


def test_closed_book_prompt_has_no_passages():
    messages = to_openai_messages(render_closed_book_messages(QUESTION))
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Passages" not in messages[-1]["content"] and messages[-1]["content"] == f"Question: {QUESTION}"
    assert CLOSED_BOOK_REFUSAL in messages[0]["content"] and "own knowledge" in messages[0]["content"]
    assert "[1]" not in messages[0]["content"] + messages[-1]["content"]
    assert is_refusal(CLOSED_BOOK_REFUSAL) and is_refusal("I don't know.")
    assert not is_refusal("Gustave Eiffel built it.")


def test_default_rendering_is_unchanged():
    messages = render_messages(PromptMode.zero_shot, "Q?", context="[1]\nSome text")
    assert messages[-1].content == "Passages:\n[1]\nSome text\n\nQuestion: Q?"


def test_explicit_exemplars_replace_the_fixed_ones():
    bank = exemplar_bank()
    picked = [bank[7], bank[3]]
    messages = render(PromptMode.few_shot, exemplars=picked)
    answers = [m["content"] for m in messages[1:-1] if m["role"] == "assistant"]
    assert answers == [bank[7].answer, bank[3].answer]


def passage(id_, score=0.5, text="x"):
    return Passage(id_, f"d{id_}.txt", text, score, 0)


def test_merge_keeps_the_original_first_and_drops_duplicates():
    merged = merge_passages([passage(3), passage(1)], [passage(1), passage(7), passage(3), passage(9)])
    assert [p.id for p in merged] == [3, 1, 7, 9]
    assert [p.rank for p in merged] == [1, 2, 3, 4]


class BagOfWords(Embeddings):
    """Counts of a fixed vocabulary: enough to make nearness predictable in a unit test."""

    def __init__(self, texts):
        self.vocab = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})

    def _embed(self, text):
        v = np.zeros(len(self.vocab) + 1)
        for w in re.findall(r"[a-z]+", text.lower()):
            v[self.vocab.index(w) if w in self.vocab else -1] += 1
        return list(v / (np.linalg.norm(v) or 1))

    def embed_documents(self, texts):
        return [self._embed(t) for t in texts]

    def embed_query(self, text):
        return self._embed(text)


def test_similarity_selection_returns_the_nearest_exemplars():
    bank = exemplar_bank()
    selector = ExemplarSelector("similarity", BagOfWords([e.question for e in bank]))
    picked = selector.select(PromptMode.few_shot, "How long is the main span of the bridge?", shots=2)
    assert picked[0].question == "How long is the main span of the Kestrel Bridge?"
    assert len(picked) == 2
    one = selector.select(PromptMode.one_shot, "What is the name of the sourdough starter?")
    assert [e.question for e in one] == ["What is the name of the bakery's sourdough starter?"]
    assert selector.select(PromptMode.zero_shot, "anything") == []


def test_fixed_selection_takes_the_bank_in_order():
    selector = ExemplarSelector("fixed")
    bank = exemplar_bank()
    assert selector.select(PromptMode.one_shot, "How long is it?") == [bank[0]]
    assert selector.select(PromptMode.few_shot, "anything") == list(bank[:4])
    assert selector.select(PromptMode.few_shot, "anything", shots=6) == list(bank[:6])
    with pytest.raises(ValueError, match="embedding"):
        ExemplarSelector("similarity")


@pytest.mark.slow
def test_similarity_selection_with_the_service_embedding_model(embedder):
    selector = ExemplarSelector("similarity", embedder.embeddings)
    picked = selector.select(PromptMode.few_shot, "Which river do salmon swim up again?", shots=3)
    assert picked[0].question == "Why did salmon return to the Quillon river?"
    picked = selector.select(PromptMode.few_shot, "What is the price of a museum ticket?", shots=1)
    assert picked[0].question == "How much does a ticket to the museum cost?"
