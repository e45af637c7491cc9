"""Context packing against the real embedded llama.cpp server (its tokenizer, its window)."""

from __future__ import annotations

import asyncio

import pytest

from app.core.config import EMBEDDED_LLM_ALIAS
from app.llm.client import LLMClient, Sampling
from app.llm.embedded import EmbeddedLLMServer
from app.rag.packing import ContextPacker, PromptTooLong, sentences
from app.rag.prompts import PromptMode
from app.rag.retrieval import Passage

pytestmark = pytest.mark.slow

N_CTX = 1024


@pytest.fixture(scope="module")
def llama_server():
    with EmbeddedLLMServer(alias=EMBEDDED_LLM_ALIAS, n_ctx=N_CTX) as server:
        yield server


def passage(rank: int, n_sentences: int) -> Passage:
    text = " ".join(
        f"Crate {rank}-{i} in the north depot holds {i * 7 + rank} copper valves." for i in range(n_sentences)
    )
    return Passage(id=rank, doc=f"depot-{rank}.txt", text=text, score=0.5, rank=rank)


def run(server, coro_fn):
    async def go():
        llm = LLMClient(server.base_url, EMBEDDED_LLM_ALIAS, timeout_s=600)
        try:
            return await coro_fn(llm, ContextPacker(llm, configured_window=N_CTX))
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_short_passages_all_fit(llama_server):
    passages = [passage(r, 2) for r in range(1, 4)]
    packed = run(llama_server, lambda llm, p: p.pack(PromptMode.zero_shot, "How many valves?", passages, 64))
    assert packed.passages == passages and packed.dropped == 0 and not packed.truncated
    assert not packed.exact  # llama.cpp counts text, not whole chat prompts


def test_long_passages_are_packed_in_rank_order_and_the_last_cut_at_a_sentence(llama_server):
    passages = [passage(r, 12) for r in range(1, 11)]  # ~200 tokens each, ~2,000 in all

    async def pack_and_chat(llm, packer):
        packed = await packer.pack(PromptMode.zero_shot, "How many valves in crate 3-4?", passages, 256)
        completion = await llm.chat(packed.messages, Sampling(0.0, 256, stop=["\n\n"]))
        return packed, completion

    packed, completion = run(llama_server, pack_and_chat)
    kept = len(packed.passages)
    assert 1 < kept < 10 and packed.dropped == 10 - kept
    assert packed.passages[: kept - 1] == passages[: kept - 1]
    assert packed.truncated
    cut = packed.passages[-1]
    assert passages[kept - 1].text.startswith(cut.text) and cut.text.endswith("valves.")
    # The estimate is conservative: the engine's own count plus max_tokens fits the window.
    assert completion.prompt_tokens <= packed.prompt_tokens <= packed.budget
    assert completion.prompt_tokens + 256 <= N_CTX


def test_a_one_sentence_passage_that_does_not_fit_is_dropped(llama_server):
    passages = [passage(1, 2), Passage(2, "big.txt", "word " * 2000, 0.4, 2)]
    packed = run(llama_server, lambda llm, p: p.pack(PromptMode.zero_shot, "How many valves?", passages, 64))
    assert packed.passages == passages[:1] and packed.dropped == 1 and not packed.truncated


def test_no_room_for_the_answer_is_prompt_too_long(llama_server):
    with pytest.raises(PromptTooLong, match="1024-token context window"):
        run(llama_server, lambda llm, p: p.pack(PromptMode.few_shot, "How many?", [passage(1, 2)], N_CTX - 50))


def test_sentences_split_on_latin_and_korean_stops():
    assert sentences("One. Two? Three!\nFour") == ["One.", "Two?", "Three!", "Four"]
    assert sentences("첫 문장입니다. 두 번째 문장입니다.") == ["첫 문장입니다.", "두 번째 문장입니다."]
