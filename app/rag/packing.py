"""Fitting the prompt into the model's context window, counted in the serving engine's tokens.

The rule: prompt tokens + max_tokens <= the served context window, always. vLLM rejects a
longer prompt with a 400 and silently cuts the answer short when only max_tokens overflows;
llama.cpp's server fails with "Requested tokens exceed context window".

How a prompt is measured, best first:
1. exact: the whole rendered chat prompt, by the engine (vLLM's ``/tokenize`` with ``messages``);
2. per message: each message's text by the engine's tokenizer (llama.cpp's ``/extras/tokenize``),
   plus an allowance for the chat template's role markers and a safety margin;
3. bytes: UTF-8 bytes per message (byte-level BPE never makes more tokens than bytes), logged.

Passages go in rank order (binary search over how many fit); the first one that does not fit
whole is cut at a sentence boundary, or dropped when not even its first sentence fits.

Nothing is done twice for one prompt: the chat template is rendered once, with a placeholder
where the passages go, and each candidate prompt is that rendering with the passages put in;
each candidate is measured once, all the passages first (when they fit, one count is all).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from langchain_core.messages import BaseMessage

from app.llm.protocol import ChatLLM
from app.rag.prompts import PromptMode, format_passages, render_messages, to_openai_messages
from app.rag.retrieval import Passage

log = logging.getLogger(__name__)

# Chat templates add role markers around each message (Llama 2's [INST] ... [/INST], ChatML's
# <|im_start|>role ... <|im_end|>); only needed when the engine cannot count whole prompts.
TEMPLATE_TOKENS_PER_MESSAGE = 8
# Room kept free when the count is not exact.
ESTIMATE_MARGIN = 32

# Sentence ends: Latin and CJK full stops, question and exclamation marks, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?。？！])\s+|\n+")

Messages = list[dict[str, str]]


class PromptTooLong(Exception):
    """Even with no passages, the question and max_tokens do not fit the context window."""


@dataclass
class PackedPrompt:
    messages: Messages
    passages: list[Passage]  # those the model sees, in rank order (the last one maybe cut)
    dropped: int  # retrieved passages left out entirely
    truncated: bool  # whether the last passage was cut at a sentence boundary
    prompt_tokens: int  # as measured while packing
    exact: bool  # measured by the engine on the whole rendered prompt
    budget: int  # the most prompt tokens allowed: window - max_tokens (- margin if estimated)
    context_window: int


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


class ContextPacker:
    def __init__(self, llm: ChatLLM, configured_window: int):
        self.llm = llm
        self.configured_window = configured_window
        self._window: int | None = None
        self._warned_estimate = False
        self._warned_per_message = False
        self._piece_cache: dict[str, int] = {}  # system and exemplar messages repeat

    async def context_window(self) -> int:
        """The served window (vLLM's max_model_len), else the configured one (embedded n_ctx)."""
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

    async def measure(self, messages: Messages) -> tuple[int, bool]:
        """(prompt tokens, exact?) for the chat prompt these messages render to."""
        exact = await self.llm.count_prompt_tokens(messages)
        if exact is not None:
            return exact, True
        if not self._warned_per_message:
            log.info(
                "the LLM server cannot count whole chat prompts; packing with per-message counts, "
                "%d tokens per message for the template and a %d-token margin",
                TEMPLATE_TOKENS_PER_MESSAGE,
                ESTIMATE_MARGIN,
            )
            self._warned_per_message = True
        total = 0
        for message in messages:
            content = message["content"]
            if content not in self._piece_cache:
                if len(self._piece_cache) > 256:
                    self._piece_cache.clear()
                self._piece_cache[content] = await self.count(content)
            total += self._piece_cache[content] + TEMPLATE_TOKENS_PER_MESSAGE
        return total, False

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
        window = await self.context_window()
        build = _Template.of(render)

        async def measured(chosen: list[Passage]) -> _Fit:
            messages = build(format_passages([p.text for p in chosen], [p.doc for p in chosen]))
            tokens, exact = await self.measure(messages)
            budget = window - max_tokens - (0 if exact else ESTIMATE_MARGIN)
            return _Fit(chosen, messages, tokens, exact, budget)

        async def fit(chosen: list[Passage]) -> _Fit | None:
            """The measured prompt if it leaves room for max_tokens, else None."""
            found = await measured(chosen)
            return found if found.tokens <= found.budget else None

        everything = await fit(passages) if passages else None
        if everything is not None:
            best = everything
        else:
            bare = await measured([])
            if bare.tokens > bare.budget:
                raise PromptTooLong(
                    f"the question alone needs {'' if bare.exact else 'about '}{bare.tokens} prompt tokens; "
                    f"with max_tokens={max_tokens} that does not fit the model's {window}-token context "
                    "window: shorten the question or lower max_tokens"
                )
            best = bare
        if everything is None and passages:
            lo, hi = 0, len(passages)  # passages[:lo] fits, passages[:hi] does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if (found := await fit(passages[:mid])) is not None:
                    lo, best = mid, found
                else:
                    hi = mid
            best = await self._cut_at_sentence(passages[lo], best, fit) or best
        truncated = bool(best.passages) and best.passages[-1] is not passages[len(best.passages) - 1]
        return PackedPrompt(
            messages=best.messages,
            passages=best.passages,
            dropped=len(passages) - len(best.passages),
            truncated=truncated,
            prompt_tokens=best.tokens,
            exact=best.exact,
            budget=best.budget,
            context_window=window,
        )

    @staticmethod
    async def _cut_at_sentence(
        passage: Passage, kept: _Fit, fit: Callable[[list[Passage]], Awaitable[_Fit | None]]
    ) -> _Fit | None:
        """``kept`` plus the longest leading run of the passage's sentences that fits, or None."""
        parts = sentences(passage.text)
        best = None
        lo, hi = 0, len(parts)  # parts[:lo] fits (0: trivially), parts[:hi] does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            cut = replace(passage, text=" ".join(parts[:mid]), sentences=None)
            if (found := await fit(kept.passages + [cut])) is not None:
                lo, best = mid, found
            else:
                hi = mid
        return best


class _Template:
    """The chat prompt rendered once with a placeholder for the passages; ``self(context)`` is
    the rendering with ``context`` in its place. A template that does not show the placeholder
    exactly once (it transforms the context) is rendered anew for each context instead."""

    def __init__(self, render: Callable[[str], list[BaseMessage]], messages: Messages | None, slot: str):
        self.render, self.messages, self.slot = render, messages, slot

    @classmethod
    def of(cls, render: Callable[[str], list[BaseMessage]]) -> _Template:
        slot = f"<<ragqa-passages-{uuid.uuid4().hex}>>"
        messages = to_openai_messages(render(slot))
        shown = sum(str(m.get("content", "")).count(slot) for m in messages)
        return cls(render, messages if shown == 1 else None, slot)

    def __call__(self, context: str) -> Messages:
        if self.messages is None:
            return to_openai_messages(self.render(context))
        return [
            {**m, "content": m["content"].replace(self.slot, context)}
            if isinstance(m.get("content"), str) and self.slot in m["content"]
            else dict(m)
            for m in self.messages
        ]


@dataclass
class _Fit:
    passages: list[Passage]
    messages: Messages
    tokens: int
    exact: bool
    budget: int
