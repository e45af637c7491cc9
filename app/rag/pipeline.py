"""The ask pipeline: retrieve, pack the prompt, generate, hold the answer to the evidence.

``run()`` answers at once; ``stream()`` yields the sources, the answer token by token, then the
result. Both take the same steps: ``prepare`` (step-back question, retrieval, exemplars,
packing), generation, and ``_result``, the one place that grounds an answer (``Grounder``:
citations, the support check and its consequence, the question's language) and builds its
``AskResult``. Mode ``extractive`` skips generation: the answer is quoted evidence.

Strategies: ``direct`` answers at once; ``cot`` reasons step by step, then extracts the
answer in a second call; ``step_back`` first writes a more general question and retrieves
for both. ``closed_book`` answers without retrieval; ``compare`` adds that answer to a RAG one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import cast

import anyio
from starlette.concurrency import run_in_threadpool

from app.llm.client import Completion, StreamDelta, UnknownAdapter
from app.llm.protocol import ChatLLM, Messages, Sampling
from app.rag.evidence import Citation
from app.rag.grounding import AnswerSource, Grounder, Grounding
from app.rag.language import Language, language_of
from app.rag.packing import ContextPacker, PackedPrompt
from app.rag.prompts import (
    PromptMode,
    Strategy,
    clean_step_back_question,
    cot_extract_messages,
    extract_answer,
    is_refusal,
    render_closed_book_messages,
    render_messages,
    render_step_back_messages,
    to_openai_messages,
)
from app.rag.retrieval import Passage, RetrievalOptions, Retriever
from app.rag.shots import ExemplarSelection, ExemplarSelector

__all__ = [
    "ANSWER_STOP",
    "AnswerMode",
    "AskPipeline",
    "AskQuery",
    "AskResult",
    "ClosedBookAnswer",
    "DoneEvent",
    "PreparedPrompt",
    "Sampling",  # defined in app.llm.client; an AskQuery carries one
    "SourcesEvent",
    "StreamEvent",
    "TokenEvent",
    "merge_passages",
]


class AnswerMode(StrEnum):
    rag = "rag"
    extractive = "extractive"  # the best evidence sentences, quoted; nothing generated
    closed_book = "closed_book"


@dataclass(frozen=True, slots=True)
class AskQuery:
    question: str
    collection: str
    top_k: int
    prompt_mode: PromptMode
    sampling: Sampling = field(default_factory=Sampling)  # stop None: ANSWER_STOP
    strategy: Strategy = Strategy.direct
    mode: AnswerMode = AnswerMode.rag
    compare: bool = False
    shots: int | None = None
    adapter: str | None = None  # a LoRA adapter served beside the base model
    retrieval: RetrievalOptions | None = None  # None: the retriever's defaults

    @property
    def closed_book(self) -> bool:
        return self.mode is AnswerMode.closed_book


@dataclass(frozen=True, slots=True)
class PreparedPrompt:
    """What comes before generation: the packed prompt and how long getting it took."""

    packed: PackedPrompt
    passages: list[Passage]  # all retrieved, before packing
    step_back_question: str | None
    timings_ms: dict[str, float]
    started: float  # perf_counter() at the start of the request

    @property
    def top_score(self) -> float:
        """The best relevance retrieved (``Passage.relevance``): what the refusal threshold compares."""
        return max((p.relevance for p in self.passages), default=-1.0)

    def refuse_without_llm(self, refusal_min_score: float) -> bool:
        """Nothing retrieved is close enough to the question to be worth asking about."""
        return self.top_score < refusal_min_score


@dataclass
class ClosedBookAnswer:
    answer: str
    grounded: bool
    refused: bool
    supported_share: float | None  # of its sentences, by the RAG passages


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
    strategy: Strategy = Strategy.direct
    mode: AnswerMode = AnswerMode.rag
    reasoning: str | None = None
    step_back_question: str | None = None
    closed_book: ClosedBookAnswer | None = None
    top_score: float | None = None  # rag: the best retrieved similarity (see PreparedPrompt)
    answer_source: AnswerSource = AnswerSource.generated
    citations: list[Citation] = field(default_factory=list)
    unsupported: list[tuple[int, int]] = field(default_factory=list)
    supported_share: float | None = None
    language: Language = Language.en
    # The generated answer when the grounding stage replaced it (by a quote or a refusal).
    generated_answer: str | None = None


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    passages: list[Passage]
    passages_dropped: int


@dataclass(frozen=True, slots=True)
class TokenEvent:
    text: str


@dataclass(frozen=True, slots=True)
class DoneEvent:
    result: AskResult
    time_to_first_token_ms: float | None


StreamEvent = SourcesEvent | TokenEvent | DoneEvent


# A short answer ends at its first blank line; small models otherwise go on to invent
# further "passages" after the answer.
ANSWER_STOP = ["\n\n"]
# The step-back question is one line.
STEP_BACK_STOP = ["\n"]
STEP_BACK_MAX_TOKENS = 48


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def merge_passages(first: list[Passage], second: list[Passage]) -> list[Passage]:
    """``first`` in its order, then what ``second`` adds; no chunk twice; ranks renumbered."""
    seen = {p.id for p in first}
    merged = list(first)
    for p in second:
        if p.id not in seen:
            seen.add(p.id)
            merged.append(p)
    return [replace(p, rank=rank) for rank, p in enumerate(merged, start=1)]


class _Usage:
    """Tokens summed over the LLM calls of one request."""

    def __init__(self) -> None:
        self.prompt = self.completion = 0
        self.model = ""
        self.finish_reason: str | None = None

    def add(self, completion: Completion) -> Completion:
        self.prompt += completion.prompt_tokens
        self.completion += completion.completion_tokens
        self.model = completion.model
        self.finish_reason = completion.finish_reason
        return completion


class AskPipeline:
    def __init__(
        self,
        retriever: Retriever,
        packer: ContextPacker,
        llm: ChatLLM,
        min_relevance: float,
        selector: ExemplarSelector | None = None,
        refusal_min_score: float = -1.0,
        grounder: Grounder | None = None,
        grounders: Callable[[str], Grounder] | None = None,
    ):
        """``grounders``: the grounder for a collection's embedding model (its embedder and its
        thresholds, the refusal threshold included); without it, ``grounder`` and
        ``refusal_min_score`` serve every collection."""
        self.retriever = retriever
        self.packer = packer
        self.llm = llm
        self.min_relevance = min_relevance
        self.selector = selector or ExemplarSelector(ExemplarSelection.fixed)
        self.refusal_min_score = refusal_min_score
        self.grounder = grounder or Grounder(retriever.embedder, min_relevance=min_relevance)
        self._grounders = grounders

    def grounder_for(self, collection: str) -> Grounder:
        if self._grounders is None:
            return self.grounder
        return self._grounders(self.retriever.model_of(collection))

    def refusal_min_score_for(self, collection: str) -> float:
        """The refusal threshold of the collection's embedding model."""
        if self._grounders is None:
            return self.refusal_min_score
        return self.grounder_for(collection).refusal_min_score

    async def retrieve(
        self, question: str, collection: str, top_k: int, options: RetrievalOptions | None = None
    ) -> list[Passage]:
        return await run_in_threadpool(self.retriever.run, question, collection, top_k, options)

    async def check_adapter(self, name: str) -> None:
        """Fail fast, before retrieval, when the server does not serve the named adapter."""
        available = [a.name for a in await self.llm.list_adapters()]
        if name not in available:
            raise UnknownAdapter(name, available)

    # ---- the two ways to answer -------------------------------------------------------------

    async def run(self, query: AskQuery) -> AskResult:
        if query.adapter:
            await self.check_adapter(query.adapter)
        if query.mode is AnswerMode.closed_book:
            return await self._closed_book(query)
        usage = _Usage()
        prepared = await self.prepare(query, usage)
        generating = time.perf_counter()
        answer, reasoning = await self._generate(query, prepared, usage)
        result = await self._result(query, usage, answer, generating, prepared, reasoning)
        if query.compare:
            await self._add_closed_book(query, result)
        return result

    async def stream(self, query: AskQuery) -> AsyncIterator[StreamEvent]:
        """``run()``'s steps for strategy direct in mode rag, as events: the sources, the
        answer's tokens, then the result. Close the iterator to stop early: that closes the LLM
        stream, which stops generation."""
        if query.adapter:
            await self.check_adapter(query.adapter)
        usage = _Usage()
        prepared = await self.prepare(query, usage)
        packed = prepared.packed
        yield SourcesEvent(packed.passages, packed.dropped)

        generating = time.perf_counter()
        first_token: float | None = None
        if query.mode is AnswerMode.extractive or prepared.refuse_without_llm(
            self.refusal_min_score_for(query.collection)
        ):
            # No LLM call: the grounding stage quotes or refuses, as in run(); the done event
            # carries that answer.
            answer = ""
        else:
            pieces: list[str] = []
            model, finish_reason = "", None
            prompt_tokens = completion_tokens = None
            stream = self.llm.chat_stream(packed.messages, self._sampling(query), model=query.adapter)
            try:
                async for delta in stream:
                    model = delta.model or model
                    finish_reason = delta.finish_reason or finish_reason
                    prompt_tokens = delta.prompt_tokens or prompt_tokens
                    completion_tokens = delta.completion_tokens or completion_tokens
                    text = delta.text if first_token is not None else delta.text.lstrip()
                    if not text:
                        continue
                    # The non-streamed answer is stripped: the first token starts it the same way.
                    first_token = first_token or time.perf_counter()
                    pieces.append(text)
                    yield TokenEvent(text)
            finally:
                # Also when cancelled (the client went away): closing the stream stops generation.
                with anyio.CancelScope(shield=True):
                    await cast(AsyncGenerator[StreamDelta, None], stream).aclose()
            answer = "".join(pieces).strip()
            if completion_tokens is None:
                # llama.cpp's server reports no usage when streaming, and a delta can hold several
                # tokens: count the answer with the engine's own tokenizer.
                completion_tokens = await self.packer.count(answer) if answer else 0
            # Without reported usage, the packer's count is the prompt's size in the engine's tokens.
            prompt_tokens = prompt_tokens or packed.prompt_tokens
            usage.add(Completion(answer, model, prompt_tokens, completion_tokens, finish_reason))
        result = await self._result(query, usage, answer, generating, prepared)
        if not answer:
            yield TokenEvent(result.answer)
        yield DoneEvent(result, _ms(first_token - generating) if first_token else None)

    # ---- the shared steps -------------------------------------------------------------------

    @staticmethod
    def _sampling(query: AskQuery, **changes) -> Sampling:
        """The query's sampling for an answer (``stop`` ANSWER_STOP unless given), with changes."""
        return query.sampling.but(**{"stop": query.sampling.stop or ANSWER_STOP, **changes})

    async def _chat(
        self, usage: _Usage, messages: Messages, query: AskQuery, sampling: Sampling | None = None
    ) -> Completion:
        sampling = sampling or self._sampling(query)
        return usage.add(await self.llm.chat(messages, sampling, model=query.adapter))

    async def prepare(self, query: AskQuery, usage: _Usage | None = None) -> PreparedPrompt:
        """Everything before the answer is generated: the step-back question, retrieval,
        exemplar choice and packing."""
        started = time.perf_counter()
        usage = usage or _Usage()
        timings: dict[str, float] = {}

        step_back_question = None
        if query.strategy is Strategy.step_back:
            written = await self._chat(
                usage,
                to_openai_messages(render_step_back_messages(query.question)),
                query,
                self._sampling(query, max_tokens=STEP_BACK_MAX_TOKENS, stop=STEP_BACK_STOP),
            )
            step_back_question = clean_step_back_question(written.text) or None
            timings["step_back"] = _ms(time.perf_counter() - started)

        retrieving = time.perf_counter()
        passages = await self.retrieve(query.question, query.collection, query.top_k, query.retrieval)
        if step_back_question:
            passages = merge_passages(
                passages,
                await self.retrieve(step_back_question, query.collection, query.top_k, query.retrieval),
            )
        if any(p.sentences is None for p in passages):  # a collection without sentence vectors
            passages = await run_in_threadpool(
                self.grounder_for(query.collection).with_sentence_scores, query.question, passages
            )
        exemplars = await run_in_threadpool(
            self.selector.select, query.prompt_mode, query.question, query.shots
        )
        retrieved = time.perf_counter()
        timings["retrieve"] = _ms(retrieved - retrieving)

        def render(context: str):
            return render_messages(
                query.prompt_mode,
                query.question,
                context,
                exemplars=exemplars,
                strategy=query.strategy,
                step_back_question=step_back_question or "",
            )

        # cot's second prompt holds the reasoning too: reserve room for both generations.
        reserve = query.sampling.max_tokens * (2 if query.strategy is Strategy.cot else 1)
        packed = await self.packer.pack(query.prompt_mode, query.question, passages, reserve, render=render)
        timings["pack"] = _ms(time.perf_counter() - retrieved)
        return PreparedPrompt(packed, passages, step_back_question, timings, started)

    async def _generate(
        self, query: AskQuery, prepared: PreparedPrompt, usage: _Usage
    ) -> tuple[str, str | None]:
        """(answer, reasoning) for a prepared prompt, in one piece; "" when nothing is generated
        (extractive mode, or nothing retrieved close enough to ask about)."""
        if query.mode is AnswerMode.extractive or prepared.refuse_without_llm(
            self.refusal_min_score_for(query.collection)
        ):
            return "", None
        messages = prepared.packed.messages
        if query.strategy is Strategy.cot:
            # Kojima et al. stage 1: reasoning, which may run over several paragraphs.
            thought = await self._chat(usage, messages, query, self._sampling(query, stop=None))
            extracted = await self._chat(usage, cot_extract_messages(messages, thought.text), query)
            return extract_answer(extracted.text), thought.text
        return (await self._chat(usage, messages, query)).text, None

    async def _closed_book(self, query: AskQuery) -> AskResult:
        started = time.perf_counter()
        usage = _Usage()
        messages = to_openai_messages(render_closed_book_messages(query.question))
        completion = await self._chat(usage, messages, query)
        return await self._result(query, usage, completion.text, started, None)

    async def _add_closed_book(self, query: AskQuery, result: AskResult) -> None:
        """compare: the closed-book answer beside the RAG one, judged on the RAG passages."""
        started = time.perf_counter()
        closed = await self._closed_book(query)
        grounder = self.grounder_for(query.collection)
        check = await run_in_threadpool(grounder.support_of, closed.answer, query.question, result.sources)
        has_evidence = grounder.has_evidence(result.sources)
        result.closed_book = ClosedBookAnswer(
            answer=closed.answer,
            grounded=has_evidence and not closed.refused and check.grounded,
            refused=closed.refused,
            supported_share=round(check.supported_share, 3) if check.checked else None,
        )
        result.prompt_tokens += closed.prompt_tokens
        result.completion_tokens += closed.completion_tokens
        result.timings_ms["closed_book"] = _ms(time.perf_counter() - started)
        result.timings_ms["total"] += result.timings_ms["closed_book"]

    async def _grounding(self, query: AskQuery, answer: str, prepared: PreparedPrompt | None) -> Grounding:
        if prepared is None:  # closed-book: no passages, nothing to ground on
            refused = is_refusal(answer)
            return Grounding(
                answer,
                AnswerSource.refused if refused else AnswerSource.generated,
                False,
                language_of(query.question),
            )
        passages = prepared.packed.passages
        grounder = self.grounder_for(query.collection)
        if prepared.refuse_without_llm(self.refusal_min_score_for(query.collection)):
            return grounder.refusal(query.question)
        if query.mode is AnswerMode.extractive:
            return await run_in_threadpool(grounder.quote, query.question, passages)
        return await run_in_threadpool(grounder.run, query.question, passages, answer)

    async def _result(
        self,
        query: AskQuery,
        usage: _Usage,
        answer: str,
        generating: float,
        prepared: PreparedPrompt | None,
        reasoning: str | None = None,
    ) -> AskResult:
        """The one place an answer is grounded and its ``AskResult`` built. ``prepared`` None is
        the closed-book answer."""
        generated = time.perf_counter()
        grounding = await self._grounding(query, answer, prepared)
        done = time.perf_counter()
        generate = _ms(generated - generating)
        if prepared is None:
            passages: list[Passage] = []
            dropped, step_back_question, top_score = 0, None, None
            timings = {"retrieve": 0.0, "pack": 0.0, "generate": generate, "total": generate}
        else:
            passages, dropped = prepared.packed.passages, prepared.packed.dropped
            step_back_question, top_score = prepared.step_back_question, prepared.top_score
            timings = {
                **prepared.timings_ms,
                "generate": generate,
                "ground": _ms(done - generated),
                "total": _ms(done - prepared.started),
            }
        closed = prepared is None
        return AskResult(
            answer=grounding.answer,
            grounded=grounding.grounded,
            refused=grounding.refused,
            sources=passages,
            passages_dropped=dropped,
            prompt_mode=PromptMode.zero_shot if closed else query.prompt_mode,
            model=usage.model or query.adapter or self.llm.model,
            prompt_tokens=usage.prompt,
            completion_tokens=usage.completion,
            finish_reason=usage.finish_reason,
            timings_ms=timings,
            strategy=Strategy.direct if closed else query.strategy,
            mode=AnswerMode.closed_book if closed else query.mode,
            reasoning=reasoning,
            step_back_question=step_back_question,
            top_score=top_score,
            answer_source=grounding.answer_source,
            citations=grounding.citations,
            unsupported=grounding.unsupported,
            supported_share=grounding.supported_share,
            language=grounding.language,
            generated_answer=answer if answer and grounding.answer != answer else None,
        )
