"""The one client path to the LLM: OpenAI-compatible chat completions over HTTP.

vLLM in production and the embedded llama.cpp server by default both speak this API,
so the default setup exercises the production code path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

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


class ContextOverflow(LLMError):
    """The LLM refused the prompt as longer than its context window: the request's fault (422)."""


class UnknownAdapter(LLMError):
    """A request named a LoRA adapter that the LLM server does not serve."""

    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        listed = ", ".join(available) if available else "none (the server serves no LoRA adapters)"
        super().__init__(f"adapter {name!r} is not served by the LLM; available adapters: {listed}")


@dataclass(frozen=True, slots=True)
class Adapter:
    """A LoRA adapter served next to its base model (vLLM: --enable-lora --lora-modules)."""

    name: str
    base: str
    path: str | None


@dataclass(frozen=True, slots=True)
class Sampling:
    """The sampling settings of one generation, from the request to the LLM client.

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
        """The settings by name (as the tests' fake LLM records them)."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
        }


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """One piece of a streamed answer; the last one has the finish reason (and usage if served)."""

    text: str
    finish_reason: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


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
        # openai's own Timeout type: since openai 3.60 it is httpx2's, which refuses httpx's.
        self._openai = AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key,
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=0,
        )
        # For the endpoints outside the OpenAI API (tokenizers live at the server root).
        self._http = httpx.AsyncClient(timeout=self._timeout)
        self._tokenize_route: str | None = None
        self._no_tokenize_route = False  # the server has neither tokenizer route
        # Whether the server counts whole chat prompts (vLLM's /tokenize messages form).
        self._counts_messages: bool | None = None

    @property
    def server_root(self) -> str:
        return self.base_url.removesuffix("/v1")

    async def aclose(self) -> None:
        await self._openai.close()
        await self._http.aclose()

    async def chat(
        self, messages: list[dict[str, str]], sampling: Sampling, *, model: str | None = None
    ) -> Completion:
        """One chat completion; ``model`` may name a LoRA adapter served beside the base model."""
        with self._mapped_errors():
            # The SDK's generic post: its connection pool, timeouts and errors, without typed
            # params and a pydantic response built per call (half its CPU; bench/profile_ask.py).
            data = await self._openai.post(
                "/chat/completions", body=self._request(messages, sampling, model), cast_to=object
            )
        return self._completion(data, model or self.model)

    def _completion(self, data: Any, model: str) -> Completion:
        """A chat completion's JSON as a Completion; anything else is the server's fault (502)."""
        try:
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return Completion(
                text=(choice["message"].get("content") or "").strip(),
                model=data.get("model") or model,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise LLMError(
                f"the LLM at {self.base_url} returned no usable chat completion: {str(data)[:200]}"
            ) from exc

    async def chat_stream(
        self, messages: list[dict[str, str]], sampling: Sampling, *, model: str | None = None
    ) -> AsyncIterator[StreamDelta]:
        """The answer as it is generated. Closing the iterator early closes the HTTP stream,
        which makes llama.cpp's server and vLLM stop generating."""
        with self._mapped_errors():
            stream = await self._openai.chat.completions.create(
                **self._request(messages, sampling, model),
                stream=True,
                # vLLM reports usage in a last chunk; llama.cpp's server ignores the option.
                stream_options={"include_usage": True},
            )
            finished = False
            async with stream:
                async for chunk in stream:
                    usage = chunk.usage
                    choice = chunk.choices[0] if chunk.choices else None
                    text = (choice.delta.content or "") if choice else ""
                    finish = choice.finish_reason if choice else None
                    finished = finished or bool(finish)
                    if text or finish or usage:
                        yield StreamDelta(
                            text,
                            finish,
                            chunk.model or model or self.model,
                            usage.prompt_tokens if usage else None,
                            usage.completion_tokens if usage else None,
                        )
            if not finished:
                # Every complete stream names why it ended (stop, length); one that just stops
                # was cut short (the server interrupted or died): never pass it off as an answer.
                raise LLMError(f"the LLM at {self.base_url} ended the stream without a finish reason")

    def _request(self, messages: list[dict[str, str]], sampling: Sampling, model: str | None) -> dict:
        """The request body chat and chat_stream send alike."""
        body: dict[str, Any] = {
            "model": model or self.model,
            "messages": messages,
            "temperature": sampling.temperature,
            # max_tokens, not max_completion_tokens: llama.cpp's server ignores the latter,
            # and generation then runs until the context is full.
            "max_tokens": sampling.max_tokens,
            "stop": sampling.stop or None,
        }
        # Left out when unset, so each backend keeps its own default.
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """The openai SDK's errors as ours, which the API maps to 504, 503 and 502."""
        try:
            yield
        except openai.APITimeoutError as exc:
            raise LLMTimeout(f"the LLM at {self.base_url} did not answer in time") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"cannot reach the LLM at {self.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 400 and "context" in str(exc.message).lower():
                # llama.cpp: "exceeds maximum context length"; vLLM: "maximum context length is".
                raise ContextOverflow(
                    "the conversation and question are too long for the model's context window: shorten them"
                ) from exc
            raise LLMError(f"the LLM at {self.base_url} answered {exc.status_code}: {exc.message}") from exc

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

    async def list_adapters(self) -> list[Adapter]:
        """The LoRA adapters the server lists: vLLM gives each a ``parent`` (its base model)."""
        return [
            Adapter(e["id"], e["parent"], e.get("root")) for e in await self.list_models() if e.get("parent")
        ]

    async def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """Tokens of the whole chat prompt as the server renders it (chat template included).

        Exact where the engine offers it (vLLM's ``/tokenize`` with ``messages``: its count equals
        the completion's ``usage.prompt_tokens``); None where it does not (llama.cpp's server).
        """
        if self._counts_messages is False:
            return None
        body = {"model": self.model, "messages": messages, "add_generation_prompt": True}
        try:
            response = await self._http.post(f"{self.server_root}/tokenize", json=body)
        except httpx.TimeoutException as exc:
            # A server that does not answer this will not answer the completion either:
            # one timeout, not one per passage counted.
            raise LLMTimeout(f"the LLM at {self.base_url} did not answer in time") from exc
        except httpx.HTTPError:
            return None  # unreachable now: say nothing about support
        if response.status_code in (404, 405):
            self._counts_messages = False
            return None
        if response.status_code != 200:
            raise LLMError(
                f"the LLM at {self.base_url} could not tokenize the prompt "
                f"({response.status_code}): {response.text[:300]}"
            )
        self._counts_messages = True
        data = response.json()
        return int(data["count"]) if "count" in data else len(data["tokens"])

    async def count_tokens(self, text: str) -> int | None:
        """Tokens in ``text`` by the serving engine's own tokenizer; None if it offers none."""
        if self._tokenize_route is None and self._no_tokenize_route:
            return None  # both routes answered 404/405 before: asking again is a wasted round trip
        routes = [self._tokenize_route] if self._tokenize_route else list(_TOKENIZE_BODIES)
        missing = 0
        for route in routes:
            try:
                response = await self._http.post(
                    f"{self.server_root}{route}", json=_TOKENIZE_BODIES[route](self.model, text)
                )
            except httpx.TimeoutException as exc:
                raise LLMTimeout(f"the LLM at {self.base_url} did not answer in time") from exc
            except httpx.HTTPError:
                return None
            if response.status_code == 200:
                data = response.json()
                self._tokenize_route = route
                return int(data["count"]) if "count" in data else len(data["tokens"])
            missing += response.status_code in (404, 405)
        self._no_tokenize_route = missing == len(_TOKENIZE_BODIES)
        return None


# The tokenizer endpoints of the two backends, outside the OpenAI API.
_TOKENIZE_BODIES = {
    # llama-cpp-python's server
    "/extras/tokenize": lambda model, text: {"input": text},
    # vLLM's OpenAI-compatible server
    "/tokenize": lambda model, text: {"model": model, "prompt": text, "add_special_tokens": False},
}
