"""The rendered messages of each prompt mode."""

from __future__ import annotations

import pytest

from app.rag.prompts import (
    REFUSAL,
    PromptMode,
    exemplar_bank,
    format_passages,
    is_refusal,
    render_messages,
    to_openai_messages,
)

PASSAGES = ["Alpha is the first letter.", "Omega is the last letter.", "Beta comes second."]
QUESTION = "Which letter is last?"


def render(mode: PromptMode) -> list[dict[str, str]]:
    context = format_passages(PASSAGES, ["a.txt", "b.txt", "c.txt"])
    return to_openai_messages(render_messages(mode, QUESTION, context))


@pytest.mark.parametrize("mode", list(PromptMode))
def test_passages_are_numbered_in_the_final_question(mode):
    messages = render(mode)
    assert messages[0]["role"] == "system"
    assert REFUSAL in messages[0]["content"]
    final = messages[-1]
    assert final["role"] == "user"
    for n, text in enumerate(PASSAGES, start=1):
        assert f"[{n}] (source: " in final["content"]
        assert text in final["content"]
    assert final["content"].index("[1]") < final["content"].index("[2]") < final["content"].index("[3]")
    assert final["content"].rstrip().endswith(f"Question: {QUESTION}")


def exemplar_turns(messages: list[dict[str, str]]) -> list[tuple[dict, dict]]:
    middle = messages[1:-1]
    assert len(middle) % 2 == 0
    return [(middle[i], middle[i + 1]) for i in range(0, len(middle), 2)]


def test_zero_shot_has_no_exemplars():
    messages = render(PromptMode.zero_shot)
    assert [m["role"] for m in messages] == ["system", "user"]


def test_one_shot_has_exactly_one_exemplar():
    turns = exemplar_turns(render(PromptMode.one_shot))
    assert len(turns) == 1
    user, assistant = turns[0]
    bank = exemplar_bank()
    assert (user["role"], assistant["role"]) == ("user", "assistant")
    assert bank[0].question in user["content"] and assistant["content"] == bank[0].answer
    assert not is_refusal(assistant["content"])  # the single shot shows a real answer


def test_few_shot_has_several_exemplars_including_a_refusal():
    turns = exemplar_turns(render(PromptMode.few_shot))
    assert len(turns) >= 3
    answers = [assistant["content"] for _, assistant in turns]
    assert REFUSAL in answers
    assert any(not is_refusal(a) for a in answers)
    for user, _ in turns:
        assert user["content"].startswith("Passages:\n[1]")


def test_exemplar_bank_has_a_refusal_and_cites_passages():
    bank = exemplar_bank()
    assert any(e.answer == REFUSAL for e in bank)
    for e in bank:
        if e.answer != REFUSAL:
            assert "[" in e.answer, e


def test_braces_in_passages_are_not_template_syntax():
    context = format_passages(["Use {question} and {context} literally."])
    messages = to_openai_messages(render_messages(PromptMode.few_shot, "What {is} it?", context))
    assert "Use {question} and {context} literally." in messages[-1]["content"]
    assert "What {is} it?" in messages[-1]["content"]


@pytest.mark.parametrize(
    "answer, refused",
    [
        (REFUSAL, True),
        ("The answer is not in the passages.", True),
        ("", True),
        ("The passages do not mention it.", True),
        ("It is not in Paris but in Lyon [2].", False),
        ("412 metres [1]", False),
    ],
)
def test_refusal_detection(answer, refused):
    assert is_refusal(answer) is refused
