"""Fitting the prompt into the model's context window, counted in the serving engine's tokens."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.messages import BaseMessage

from app.llm.client import LLMClient
from app.rag.prompts import PromptMode, format_passages, render_messages, to_openai_messages
from app.rag.retrieval import Passage

log = logging.getLogger(__name__)

# Chat templates add role markers around each message; this covers Llama 2's and ChatML's.
TEMPLATE_TOKENS_PER_MESSAGE = 8
# Tokens counted piecewise can differ slightly from the whole prompt's count.
SAFETY_MARGIN = 32


class PromptTooLong(Exception):
    """Even with no passages, the question and max_tokens do not fit the context window."""


@dataclass
class PackedPrompt:
    messages: list[dict[str, str]]
    passages: list[Passage]  # those that fit, in rank order
    dropped: int
    prompt_tokens_estimate: int


class ContextPacker:
    def __init__(self, llm: LLMClient, configured_window: int):
        self.llm = llm
        self.configured_window = configured_window
        self._window: int | None = None
        self._warned_estimate = False

    async def context_window(self) -> int:
        if self._window is None:
            try:
                served = await self.llm.served_context_window()
            except Exception:  # unreachable now: use the setting, ask again next time
                return self.configured_window
            self._window = served or self.configured_window
        return self._window

    async def count(self, text: str) -> int:
        tokens = await self.llm.count_tokens(text)
        if tokens is not None:
            return tokens
        if not self._warned_estimate:
            log.warning("the LLM server has no tokenizer endpoint; estimating tokens by UTF-8 bytes")
            self._warned_estimate = True
        return len(text.encode("utf-8"))  # byte-level tokenizers never exceed one token per byte

    async def pack(
        self,
        mode: PromptMode,
        question: str,
        passages: list[Passage],
        max_tokens: int,
        render: Callable[[str], list[BaseMessage]] | None = None,
    ) -> PackedPrompt:
        """``render(context)`` builds the messages; by default the mode's plain answer prompt."""
        render = render or (lambda context: render_messages(mode, question, context))
        budget = await self.context_window() - max_tokens - SAFETY_MARGIN
        skeleton = render("")
        used = sum([await self.count(m.content) for m in skeleton]) + TEMPLATE_TOKENS_PER_MESSAGE * len(skeleton)
        if used > budget:
            raise PromptTooLong(
                f"the question needs about {used} tokens of prompt; with max_tokens={max_tokens} "
                f"it does not fit the model's {budget + max_tokens + SAFETY_MARGIN}-token context "
                "window: shorten the question or lower max_tokens"
            )
        kept: list[Passage] = []
        for passage in passages:
            cost = await self.count(format_passages([passage.text], [passage.doc])) + 2
            if used + cost > budget:
                break
            used += cost
            kept.append(passage)
        context = format_passages([p.text for p in kept], [p.doc for p in kept])
        messages = to_openai_messages(render(context))
        return PackedPrompt(messages, kept, len(passages) - len(kept), used)
