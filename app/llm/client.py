"""The one client path to the LLM: OpenAI-compatible chat completions over HTTP.

vLLM in production and the embedded llama.cpp server by default both speak this API,
so the default setup exercises the production code path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import openai
from openai import AsyncOpenAI

log = logging.getLogger(__name__)


class LLMError(Exception):
    """The LLM server failed or answered something unusable."""


class LLMUnavailable(LLMError):
    """The LLM server could not be reached."""


class LLMTimeout(LLMError):
    """The LLM server did not answer in time."""


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


class LLMClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._openai = AsyncOpenAI(
            base_url=self.base_url, api_key=api_key, timeout=self._timeout, max_retries=0
        )
        # For the endpoints outside the OpenAI API (tokenizers live at the server root).
        self._http = httpx.AsyncClient(timeout=self._timeout)
        self._tokenize_route: str | None = None

    @property
    def server_root(self) -> str:
        return self.base_url.removesuffix("/v1")

    async def aclose(self) -> None:
        await self._openai.close()
        await self._http.aclose()

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float,
        max_tokens: int,
        stop: list[str] | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        try:
            # max_tokens, not max_completion_tokens: llama.cpp's server ignores the latter,
            # and generation then runs until the context is full.
            response = await self._openai.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                stop=stop or None,
                # Omitted when unset, so each backend keeps its own default.
                top_p=openai.omit if top_p is None else top_p,
                seed=openai.omit if seed is None else seed,
            )
        except openai.APITimeoutError as exc:
            raise LLMTimeout(f"the LLM at {self.base_url} did not answer in time") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"cannot reach the LLM at {self.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"the LLM at {self.base_url} answered {exc.status_code}: {exc.message}"
            ) from exc
        if not response.choices:
            raise LLMError(f"the LLM at {self.base_url} returned no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=(choice.message.content or "").strip(),
            model=response.model or self.model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )

    async def list_models(self) -> list[dict]:
        """The server's /v1/models entries; raises LLMUnavailable if it cannot be reached."""
        try:
            response = await self._http.get(f"{self.base_url}/models", timeout=5.0)
            response.raise_for_status()
            return response.json().get("data", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise LLMUnavailable(f"cannot reach the LLM at {self.base_url}: {exc}") from exc

    async def is_ready(self) -> bool:
        try:
            await self.list_models()
        except LLMUnavailable:
            return False
        return True

    async def served_context_window(self) -> int | None:
        """vLLM reports max_model_len in /v1/models; llama.cpp's server does not."""
        entries = [e for e in await self.list_models() if isinstance(e.get("max_model_len"), int)]
        for entry in entries:
            if entry.get("id") == self.model:
                return entry["max_model_len"]
        return entries[0]["max_model_len"] if entries else None

    async def count_tokens(self, text: str) -> int | None:
        """Tokens in ``text`` by the serving engine's own tokenizer; None if it offers none."""
        routes = [self._tokenize_route] if self._tokenize_route else list(_TOKENIZE_BODIES)
        for route in routes:
            try:
                response = await self._http.post(
                    f"{self.server_root}{route}", json=_TOKENIZE_BODIES[route](self.model, text)
                )
            except httpx.HTTPError:
                return None
            if response.status_code == 200:
                data = response.json()
                self._tokenize_route = route
                return int(data["count"]) if "count" in data else len(data["tokens"])
        return None


# The tokenizer endpoints of the two backends, outside the OpenAI API.
_TOKENIZE_BODIES = {
    # llama-cpp-python's server
    "/extras/tokenize": lambda model, text: {"input": text},
    # vLLM's OpenAI-compatible server
    "/tokenize": lambda model, text: {"model": model, "prompt": text, "add_special_tokens": False},
}
