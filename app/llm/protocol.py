"""What ragqa needs of a chat LLM: the seam between the pipeline and the server behind it.

``LLMClient`` (OpenAI-compatible HTTP: the embedded llama.cpp server or vLLM) is the one real
implementation; the tests' ``FakeChatLLM`` is another. The pipeline, the context packer, the
condensing of chat history and the health and adapter routes use nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from app.llm.client import Adapter, Completion, Sampling, StreamDelta

__all__ = ["Adapter", "ChatLLM", "Completion", "Messages", "Sampling", "StreamDelta"]

Messages = list[dict[str, str]]


@runtime_checkable
class ChatLLM(Protocol):
    model: str  # the base model's name, used when a request names no adapter
    base_url: str

    async def chat(self, messages: Messages, sampling: Sampling, *, model: str | None = None) -> Completion:
        """One completion; ``model`` may name a LoRA adapter served beside the base model."""
        ...

    def chat_stream(
        self, messages: Messages, sampling: Sampling, *, model: str | None = None
    ) -> AsyncIterator[StreamDelta]:
        """The same completion as it is generated."""
        ...

    async def list_adapters(self) -> list[Adapter]: ...

    async def is_ready(self) -> bool: ...

    async def served_context_window(self) -> int | None: ...

    async def count_tokens(self, text: str) -> int | None: ...

    async def count_prompt_tokens(self, messages: Messages) -> int | None: ...

    async def aclose(self) -> None: ...
