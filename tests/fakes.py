"""Fakes for the fast tier: a scripted chat LLM and a deterministic embedder.

``FakeChatLLM`` satisfies ``app.llm.protocol.ChatLLM`` and ``FakeEmbedder`` satisfies
``app.core.embeddings.Embedder``; ``fake_services`` wires them into the same ``Services`` the
API serves with, over a real index store, so only the models are replaced.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
from langchain_core.embeddings import DeterministicFakeEmbedding

from app.core.config import Settings
from app.llm.client import Adapter, Completion, Sampling, StreamDelta
from app.llm.protocol import Messages

_WORD = re.compile(r"\w+", re.UNICODE)

FAKE_EMBEDDING_MODEL = "fake/hashed-bag-of-words"
FAKE_LLM_MODEL = "fake-llm"
DEFAULT_ANSWER = "ragqa answers questions from your own documents."


class FakeEmbedder:
    """Hashed bag of words: each lower-cased word adds +-1 to one of ``dim`` buckets; unit length.

    Texts sharing words are close, so retrieval over it ranks like a crude lexical search.
    """

    model_id = FAKE_EMBEDDING_MODEL
    normalized = True

    def __init__(self, dim: int = 256, batch_size: int = 64):
        self.dim = dim
        self.batch_size = batch_size
        self.calls = 0

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


Reply = str | Callable[[Messages], str] | Exception


class UnitFakeEmbedding(DeterministicFakeEmbedding):
    """Deterministic random vectors, normalised like the real models' output."""

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        vector = np.asarray(super().embed_query(text))
        return (vector / np.linalg.norm(vector)).tolist()


class FakeChatLLM:
    """A chat LLM that answers from a script.

    ``script`` replies are used in order, one per call (chat or stream); after that ``default``.
    A reply is a string, a function of the messages, or an exception to raise. Streamed answers
    come word by word (the first with a leading space, as llama.cpp sends it) and, like
    llama.cpp's server, without usage. Every call is recorded in ``calls``.
    """

    def __init__(
        self,
        script: list[Reply] | None = None,
        default: Reply = DEFAULT_ANSWER,
        *,
        model: str = FAKE_LLM_MODEL,
        adapters: list[Adapter] | None = None,
        ready: bool = True,
        context_window: int | None = None,
    ):
        self.script = list(script or [])
        self.default = default
        self.model = model
        self.base_url = "http://fake-llm.invalid/v1"
        self.adapters = adapters or []
        self.ready = ready
        self.context_window = context_window
        self.calls: list[dict] = []
        self.closed = False

    def _reply(self, messages: Messages, options: dict, streamed: bool) -> str:
        self.calls.append({"messages": messages, "streamed": streamed, **options})
        reply = self.script.pop(0) if self.script else self.default
        if isinstance(reply, Exception):
            raise reply
        return reply(messages) if callable(reply) else reply

    async def chat(self, messages: Messages, sampling: Sampling, *, model: str | None = None) -> Completion:
        text = self._reply(messages, {**sampling.as_kwargs(), "model": model}, streamed=False)
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Completion(text.strip(), model or self.model, prompt_tokens, len(text.split()), "stop")

    async def chat_stream(
        self, messages: Messages, sampling: Sampling, *, model: str | None = None
    ) -> AsyncIterator[StreamDelta]:
        text = self._reply(messages, {**sampling.as_kwargs(), "model": model}, streamed=True)
        for word in text.split():
            yield StreamDelta(" " + word, model=model or self.model)
        yield StreamDelta("", "stop", model or self.model)

    async def list_adapters(self) -> list[Adapter]:
        return list(self.adapters)

    async def is_ready(self) -> bool:
        return self.ready

    async def served_context_window(self) -> int | None:
        return self.context_window

    async def count_tokens(self, text: str) -> int | None:
        return len(text.split())

    async def count_prompt_tokens(self, messages: Messages) -> int | None:
        return None  # as llama.cpp's server: the packer counts message by message

    async def aclose(self) -> None:
        self.closed = True


def fake_settings(index_dir: Path, **overrides) -> Settings:
    """Settings for the fakes: no .env, the fake embedder's model name, a placeholder LLM URL."""
    return Settings(
        _env_file=None,
        index_dir=index_dir,
        embedding_model=FAKE_EMBEDDING_MODEL,
        llm_base_url="http://fake-llm.invalid/v1",
        **{"llm_model": FAKE_LLM_MODEL, **overrides},
    )


def fake_services(settings: Settings, llm: FakeChatLLM | None = None, embedder: FakeEmbedder | None = None):
    """The API's ``Services`` over the real store and pipeline, with the fakes as models."""
    from app.api.services import Services

    return Services.build(settings, llm=llm or FakeChatLLM(), embedder=embedder or FakeEmbedder())


def ingest_samples(index_dir: Path, collection: str = "default", embedder: FakeEmbedder | None = None):
    """The README's sample documents, embedded with the fake embedder."""
    from app.core.store import IndexStore
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter

    samples = Path(__file__).resolve().parents[1] / "samples" / "ragqa-docs"
    job = IngestJob(IndexStore(index_dir), embedder or FakeEmbedder(), TextSplitter(1000, 150))
    return job.run(samples, collection)
