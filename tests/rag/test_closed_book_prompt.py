"""The closed-book prompt: the same model and shots, with no passages (the evaluation baseline)."""

from __future__ import annotations

import pytest

from app.rag.prompts import REFUSAL, PromptMode, is_refusal, render_messages


@pytest.mark.parametrize("mode", list(PromptMode))
def test_closed_book_messages_hold_no_passages(mode):
    messages = render_messages(mode, "Who built the bridge?", context="", closed_book=True)
    text = "\n".join(m.content for m in messages)
    assert "Passages:" not in text and "[1]" not in text and "passage" not in text.lower()
    assert messages[-1].content == "Question: Who built the bridge?"
    assert REFUSAL in messages[0].content  # it refuses with the sentence is_refusal() knows
    rag = render_messages(mode, "Who built the bridge?", context="[1]\nText")
    assert len(messages) == len(rag)  # the same shots, minus their passages


def test_closed_book_shots_lose_their_citations():
    messages = render_messages(PromptMode.few_shot, "Q?", context="", closed_book=True)
    answers = [m.content for m in messages if m.type == "ai"]
    assert "412 metres" in answers and "Old Tom" in answers
    assert any(is_refusal(a) for a in answers)


def test_default_rendering_is_unchanged():
    messages = render_messages(PromptMode.zero_shot, "Q?", context="[1]\nSome text")
    assert messages[-1].content == "Passages:\n[1]\nSome text\n\nQuestion: Q?"
