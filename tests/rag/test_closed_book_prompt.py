"""The closed-book prompt: the same model asked with no passages (the evaluation's baseline)."""

from __future__ import annotations

from app.rag.prompts import (
    CLOSED_BOOK_REFUSAL,
    PromptMode,
    is_refusal,
    render_closed_book_messages,
    render_messages,
)


def test_closed_book_messages_hold_no_passages():
    messages = render_closed_book_messages("Who built the bridge?")
    text = "\n".join(m.content for m in messages)
    assert "Passages:" not in text and "[1]" not in text
    assert [m.type for m in messages] == ["system", "human"]
    assert messages[-1].content == "Question: Who built the bridge?"
    assert CLOSED_BOOK_REFUSAL in messages[0].content


def test_the_closed_book_refusal_is_recognised():
    assert is_refusal(CLOSED_BOOK_REFUSAL)
    assert not is_refusal("Gustave Eiffel built it.")


def test_default_rendering_is_unchanged():
    messages = render_messages(PromptMode.zero_shot, "Q?", context="[1]\nSome text")
    assert messages[-1].content == "Passages:\n[1]\nSome text\n\nQuestion: Q?"
