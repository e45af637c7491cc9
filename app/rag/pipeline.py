"""The ask pipeline: retrieve, pack the prompt, generate, judge groundedness. One ``run()``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from app.llm.client import LLMClient, UnknownAdapter
from app.rag.packing import ContextPacker, PackedPrompt
from app.rag.prompts import PromptMode, is_refusal
from app.rag.retrieval import Passage, RetrievalOptions, Retriever


@dataclass(frozen=True, slots=True)
class AskQuery:
    question: str
    collection: str
    top_k: int
    prompt_mode: PromptMode
    temperature: float
    max_tokens: int
    # Ask the LLM with no passages (the evaluation's baseline); retrieval is skipped.
    closed_book: bool = False
    adapter: str | None = None  # a LoRA adapter served beside the base model
    retrieval: RetrievalOptions | None = None  # None: the retriever's defaults


@dataclass(frozen=True, slots=True)
class PreparedPrompt:
    packed: PackedPrompt
    started: float  # perf_counter() readings, for the timings
    retrieved: float
    packed_at: float


@dataclass
class AskResult:
    answer: str
    grounded: bool
    refused: bool
    sources: list[Passage]
    passages_dropped: int
    prompt_mode: PromptMode
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)


# A short answer ends at its first blank line; small models otherwise go on to invent
# further "passages" after the answer.
ANSWER_STOP = ["\n\n"]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class AskPipeline:
    def __init__(
        self, retriever: Retriever, packer: ContextPacker, llm: LLMClient, min_relevance: float
    ):
        self.retriever = retriever
        self.packer = packer
        self.llm = llm
        self.min_relevance = min_relevance

    async def retrieve(
        self, question: str, collection: str, top_k: int, options: RetrievalOptions | None = None
    ) -> list[Passage]:
        return await run_in_threadpool(self.retriever.run, question, collection, top_k, options)

    async def check_adapter(self, name: str) -> None:
        """Fail fast, before retrieval, when the server does not serve the named adapter."""
        available = [a.name for a in await self.llm.list_adapters()]
        if name not in available:
            raise UnknownAdapter(name, available)

    async def prepare(self, query: AskQuery) -> PreparedPrompt:
        """Everything before generation, shared by ``run`` and the streamed answer:
        check the adapter, retrieve (unless closed-book), and pack the prompt."""
        started = time.perf_counter()
        if query.adapter:
            await self.check_adapter(query.adapter)
        passages = (
            []
            if query.closed_book
            else await self.retrieve(
                query.question, query.collection, query.top_k, query.retrieval
            )
        )
        retrieved = time.perf_counter()
        packed = await self.packer.pack(
            query.prompt_mode,
            query.question,
            passages,
            query.max_tokens,
            closed_book=query.closed_book,
        )
        return PreparedPrompt(packed, started, retrieved, time.perf_counter())

    def judge(self, answer: str, passages: list[Passage]) -> tuple[bool, bool]:
        """(grounded, refused): grounded needs a passage the model saw that is similar
        enough to the question to be evidence, and an answer that is not a refusal."""
        refused = is_refusal(answer)
        has_evidence = any(p.score >= self.min_relevance for p in passages)
        return has_evidence and not refused, refused

    async def run(self, query: AskQuery) -> AskResult:
        prepared = await self.prepare(query)
        packed, started, retrieved = prepared.packed, prepared.started, prepared.retrieved
        generating = prepared.packed_at
        completion = await self.llm.chat(
            packed.messages,
            temperature=query.temperature,
            max_tokens=query.max_tokens,
            stop=ANSWER_STOP,
            model=query.adapter,
        )
        done = time.perf_counter()

        grounded, refused = self.judge(completion.text, packed.passages)
        return AskResult(
            answer=completion.text,
            grounded=grounded,
            refused=refused,
            sources=packed.passages,
            passages_dropped=packed.dropped,
            prompt_mode=query.prompt_mode,
            model=completion.model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason,
            timings_ms={
                "retrieve": _ms(retrieved - started),
                "pack": _ms(generating - retrieved),
                "generate": _ms(done - generating),
                "total": _ms(done - started),
            },
        )
