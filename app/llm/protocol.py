"""What ragqa needs of a chat LLM: the seam between the pipeline and the server behind it.

``LLMClient`` (OpenAI-compatible HTTP: the embedded llama.cpp server or vLLM) is the one real
implementation; the tests' ``FakeChatLLM`` is another. The pipeline, the context packer, the
condensing of chat history and the health and adapter routes use nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from app.llm.client import Adapter, Completion, StreamDelta

Messages = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Sampling:
    """The sampling settings of one generation, from the request to the client's keywords.

    ``top_p`` and ``seed`` None leave the backend's defaults; ``stop`` None sends no stop
    sequence (the pipeline puts its own default in before it calls the LLM).
    """

    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None

    def but(self, **changes: Any) -> Sampling:
        """A copy with some settings changed."""
        return replace(self, **changes)

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``ChatLLM.chat`` and ``chat_stream``."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
        }


@runtime_checkable
class ChatLLM(Protocol):
    model: str  # the base model's name, used when a request names no adapter
    base_url: str

    async def chat(
        self,
        messages: Messages,
        *,
        temperature: float,
        max_tokens: int,
        stop: list[str] | None = None,
        model: str | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Completion: ...

    def chat_stream(
        self,
        messages: Messages,
        *,
        temperature: float,
        max_tokens: int,
        stop: list[str] | None = None,
        model: str | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> AsyncIterator[StreamDelta]: ...

    async def list_adapters(self) -> list[Adapter]: ...

    async def is_ready(self) -> bool: ...

    async def served_context_window(self) -> int | None: ...

    async def count_tokens(self, text: str) -> int | None: ...

    async def count_prompt_tokens(self, messages: Messages) -> int | None: ...

    async def aclose(self) -> None: ...
