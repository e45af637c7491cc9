"""Packing without repeated work: the template rendered once, each candidate prompt measured once."""

from __future__ import annotations

import asyncio

import pytest

from app.rag.packing import ContextPacker, PromptTooLong
from app.rag.prompts import PromptMode, format_passages, render_messages, to_openai_messages
from app.rag.retrieval import Passage
from tests.fakes import FakeChatLLM


class ExactCountingLLM(FakeChatLLM):
    """Counts whole chat prompts as vLLM does (here: words), and records every prompt counted."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.counted: list[list[dict]] = []

    async def count_prompt_tokens(self, messages):
        self.counted.append(messages)
        return sum(len(m["content"].split()) for m in messages)


def passage(rank: int, words: int) -> Passage:
    text = " ".join(f"Sentence {rank} part {i} says something." for i in range(words // 5))
    return Passage(id=rank, doc=f"doc-{rank}.txt", text=text, score=0.5, rank=rank)


def pack(llm, window, mode, question, passages, max_tokens=64, render=None):
    return asyncio.run(ContextPacker(llm, window).pack(mode, question, passages, max_tokens, render=render))


@pytest.mark.parametrize("mode", list(PromptMode))
@pytest.mark.parametrize("question", ["How many parts?", "몇 개의 부분이 있나요?"])
def test_the_packed_prompt_is_the_full_rendering_of_the_passages_chosen(mode, question):
    passages = [passage(r, 60) for r in range(1, 6)]
    for window in (4096, 420):  # all fit; only some fit, the last one cut
        packed = pack(ExactCountingLLM(), window, mode, question, passages)
        chosen = packed.passages
        expected = to_openai_messages(
            render_messages(
                mode, question, format_passages([p.text for p in chosen], [p.doc for p in chosen])
            )
        )
        assert packed.messages == expected
    assert packed.dropped > 0  # the small window did leave passages out


def test_when_everything_fits_the_prompt_is_counted_once():
    llm = ExactCountingLLM()
    packed = pack(llm, 4096, PromptMode.one_shot, "How many parts?", [passage(r, 40) for r in range(1, 6)])
    assert packed.dropped == 0 and packed.exact
    assert len(llm.counted) == 1


def test_no_candidate_prompt_is_counted_twice():
    llm = ExactCountingLLM()
    packed = pack(llm, 400, PromptMode.zero_shot, "How many parts?", [passage(r, 60) for r in range(1, 8)])
    assert 0 < len(packed.passages) < 7 and packed.truncated
    assert len(llm.counted) > 3  # a binary search happened
    assert len({repr(m) for m in llm.counted}) == len(llm.counted)


def test_a_question_that_cannot_fit_is_still_prompt_too_long_and_counted_once_bare():
    llm = ExactCountingLLM()
    bare = sum(
        len(m["content"].split())
        for m in to_openai_messages(render_messages(PromptMode.zero_shot, "How many parts?", ""))
    )
    with pytest.raises(PromptTooLong, match=f"the question alone needs {bare} prompt tokens"):
        pack(llm, 600, PromptMode.zero_shot, "How many parts?", [passage(1, 40)], max_tokens=600 - bare + 1)
    assert len(llm.counted) == 2  # everything, then the question alone


def test_a_render_that_changes_the_passages_is_rendered_for_each_candidate():
    def shouting(context: str):
        return render_messages(PromptMode.zero_shot, "How many parts?", context.upper())

    passages = [passage(r, 60) for r in range(1, 6)]
    packed = pack(ExactCountingLLM(), 420, PromptMode.zero_shot, "How many parts?", passages, render=shouting)
    chosen = packed.passages
    assert 0 < len(chosen) < 5
    assert packed.messages == to_openai_messages(
        shouting(format_passages([p.text for p in chosen], [p.doc for p in chosen]))
    )
