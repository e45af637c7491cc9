"""Request and response bodies of the REST API, and their mapping to and from the pipeline's
types: ``AskRequest.to_query`` and ``AskResponse.from_result``."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.core.config import Settings
from app.core.store import COLLECTION_NAME_PATTERN
from app.rag import evidence
from app.rag.grounding import AnswerSource
from app.rag.language import Language
from app.rag.pipeline import AnswerMode, AskQuery, AskResult, Sampling
from app.rag.prompts import PromptMode, Strategy, exemplar_bank
from app.rag.retrieval import Passage, RetrievalMode, RetrievalOptions

# The longest question any route takes: /v1/ask, /v1/retrieve, the map, the chat's last message.
MAX_QUESTION_CHARS = 4000


def no_lone_surrogates(value: str) -> str:
    """JSON may escape a lone surrogate (\\ud800); it is not Unicode text and cannot be encoded
    as UTF-8 again, so it is refused here (a 422) instead of failing later (a 500)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"invalid Unicode: a lone surrogate at position {exc.start}") from None
    return value


def within_max_question_chars(value: object) -> object:
    """The schema's maxLength holds for the text as sent: whitespace that stripping removes
    later still counts here."""
    if isinstance(value, str) and len(value) > MAX_QUESTION_CHARS:
        raise ValueError(f"at most {MAX_QUESTION_CHARS:,} characters, surrounding whitespace included")
    return value


CollectionName = Annotated[str, StringConstraints(pattern=COLLECTION_NAME_PATTERN)]
Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS),
    Field(
        description=f"at most {MAX_QUESTION_CHARS:,} characters as sent, at least 1 after stripping",
        examples=["What is ragqa?"],
    ),
    BeforeValidator(within_max_question_chars),
    AfterValidator(no_lone_surrogates),
]


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Question
    collection: CollectionName = "default"
    top_k: int | None = Field(
        None, ge=1, le=50, description="passages to retrieve; default from settings", strict=True
    )
    retrieval: RetrievalMode | None = Field(
        None, description="dense, bm25 or hybrid (both fused by their scores); default from settings"
    )
    diversity: float | None = Field(
        None,
        strict=True,
        ge=0.0,
        le=1.0,
        description="MMR re-ranking: 0 = off, higher = fewer near-duplicates",
    )

    def retrieval_options(self, settings: Settings) -> RetrievalOptions:
        """The service's retrieval settings with this request's overrides."""
        return RetrievalOptions.from_settings(settings).but(self.retrieval, self.diversity)


StopSequence = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class AskRequest(RetrieveRequest):
    prompt_mode: PromptMode = PromptMode.one_shot
    shots: int | None = Field(
        None, strict=True, ge=1, le=len(exemplar_bank()), description="exemplars for few_shot (default 4)"
    )
    strategy: Strategy = Field(
        Strategy.direct,
        description="direct; cot: reason step by step, then extract the answer; "
        "step_back: ask a more general question too and retrieve for both",
    )
    mode: AnswerMode | None = Field(
        None,
        description="rag: generate from the passages; extractive: quote the best evidence "
        "sentences, nothing generated; closed_book: answer without retrieval. Default: "
        "RAGQA_DEFAULT_MODE (auto: extractive with the bundled 135M model, rag with any other)",
    )
    compare: bool = Field(
        False, description="also give the closed-book answer beside the RAG one", strict=True
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, strict=True)
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="default: the backend's (1.0)", strict=True)
    max_tokens: int | None = Field(
        None, strict=True, ge=1, le=2048, description="answer length cap; default from settings"
    )
    adapter: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="a LoRA adapter the LLM serves (GET /v1/adapters); default: the collection's, if any",
    )
    stream: bool = Field(False, description="server-sent events: sources, token..., done", strict=True)
    stop: list[StopSequence] | None = Field(
        None, max_length=4, description='where the answer ends; default ["\\n\\n"]'
    )
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="for repeatable sampling", strict=True)

    @model_validator(mode="after")
    def _consistent(self) -> AskRequest:
        if self.shots is not None and self.prompt_mode is not PromptMode.few_shot:
            raise ValueError("shots applies to prompt_mode few_shot only")
        if self.mode is AnswerMode.closed_book:
            if self.top_k is not None:
                raise ValueError("top_k has no meaning with mode closed_book: nothing is retrieved")
            if self.strategy is not Strategy.direct:
                raise ValueError("mode closed_book supports strategy direct only")
            if self.compare:
                raise ValueError("compare already includes the closed-book answer; use mode rag")
        if self.mode is AnswerMode.extractive and self.strategy is Strategy.cot:
            raise ValueError("strategy cot generates its answer; use mode rag")
        if self.stream and (
            self.strategy is not Strategy.direct or self.compare or self.mode is AnswerMode.closed_book
        ):
            raise ValueError("stream supports modes rag and extractive with strategy direct and no compare")
        return self

    def answer_mode(self, settings: Settings) -> AnswerMode:
        """The request's mode, else the configured default; cot always generates."""
        if self.mode is not None:
            return self.mode
        default = AnswerMode(settings.resolved_default_mode)
        if default is AnswerMode.extractive and self.strategy is Strategy.cot:
            return AnswerMode.rag
        return default

    def to_query(self, settings: Settings) -> AskQuery:
        """The pipeline's query: unset fields from the settings, and the collection's LoRA
        adapter (RAGQA_COLLECTION_ADAPTERS) when the request names none."""
        return AskQuery(
            question=self.question,
            collection=self.collection,
            top_k=self.top_k or settings.top_k,
            prompt_mode=self.prompt_mode,
            sampling=Sampling(
                temperature=self.temperature,
                max_tokens=self.max_tokens or settings.llm_default_max_tokens,
                top_p=self.top_p,
                seed=self.seed,
                stop=self.stop,
            ),
            strategy=self.strategy,
            mode=self.answer_mode(settings),
            compare=self.compare,
            shots=self.shots,
            adapter=self.adapter or settings.collection_adapters.get(self.collection),
            retrieval=self.retrieval_options(settings),
        )


class Source(BaseModel):
    id: int
    doc: str = Field(description="file name relative to the ingested folder")
    text: str
    score: float = Field(description="cosine similarity to the question, in every retrieval mode")
    relevance: float = Field(
        description="the higher of score and its best sentence's cosine to the question: what "
        "RAGQA_REFUSAL_MIN_SCORE and RAGQA_MIN_RELEVANCE compare"
    )
    rank: int
    page: int | None = Field(None, description="for PDFs: the page the passage starts on")
    title: str | None = Field(
        None, description="the document's title (its file name's stem when it has none); not part of text"
    )
    section: str | None = Field(
        None, description="the heading the passage is under, if any; not part of text"
    )

    @classmethod
    def of(cls, passages: list[Passage]) -> list[Source]:
        return [cls.model_validate(p, from_attributes=True) for p in passages]


class Citation(BaseModel):
    """One answer span and the passage sentence that supports it."""

    answer_start: int = Field(description="the cited span of the answer: answer[answer_start:answer_end]")
    answer_end: int
    id: int = Field(description="the source (sources[].id) the sentence is from")
    sentence: str = Field(description="the supporting sentence, verbatim")
    sentence_start: int = Field(description="its offsets in that source's text")
    sentence_end: int
    support: float = Field(ge=0.0, le=1.0, description="half cosine, half term containment")

    @classmethod
    def of(cls, citations: list[evidence.Citation]) -> list[Citation]:
        return [
            cls(
                answer_start=c.start,
                answer_end=c.end,
                id=c.source_id,
                sentence=c.sentence,
                sentence_start=c.sentence_start,
                sentence_end=c.sentence_end,
                support=c.support,
            )
            for c in citations
        ]


class Span(BaseModel):
    start: int
    end: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Timings(BaseModel):
    retrieve: float
    pack: float
    generate: float
    total: float
    step_back: float | None = Field(None, description="writing the step-back question")
    closed_book: float | None = Field(None, description="the closed-book answer of compare")
    ground: float | None = Field(None, description="citations and the support check")


class ClosedBookAnswer(BaseModel):
    answer: str
    grounded: bool = Field(description="not refused, and every sentence supported by the passages")
    refused: bool
    supported_share: float | None = Field(
        None, description="share of its sentences that a passage sentence supports"
    )


class AskResponse(BaseModel):
    answer: str
    grounded: bool = Field(
        description="every answer sentence is supported by a passage sentence (a quote always "
        "is); false for a refusal"
    )
    refused: bool = Field(description="the answer says the documents do not hold it")
    answer_source: AnswerSource = Field(
        description="generated by the LLM, quoted from the passages, or refused"
    )
    citations: list[Citation] = Field(
        default_factory=list, description="answer spans and the passage sentences behind them"
    )
    unsupported: list[Span] = Field(
        default_factory=list, description="answer spans no passage sentence supports"
    )
    supported_share: float | None = Field(
        None, description="share of the generated answer's sentences that are supported"
    )
    language: Language = Field(description="the question's language, which the answer is in")
    generated_answer: str | None = Field(
        None, description="the LLM's answer, when the support or language check replaced it"
    )
    sources: list[Source] = Field(description="the passages the model saw, in rank order")
    passages_dropped: int = Field(description="retrieved passages left out to fit the context window")
    prompt_mode: PromptMode
    strategy: Strategy
    mode: AnswerMode
    reasoning: str | None = Field(None, description="cot: the step-by-step reasoning")
    step_back_question: str | None = Field(None, description="step_back: the general question")
    closed_book: ClosedBookAnswer | None = Field(None, description="compare: the closed-book answer")
    top_score: float | None = Field(
        None,
        description="rag: the best relevance retrieved (sources[].relevance over every retrieved "
        "passage), which RAGQA_REFUSAL_MIN_SCORE is compared with",
    )
    model: str
    usage: Usage
    timings_ms: Timings

    @classmethod
    def from_result(cls, result: AskResult) -> AskResponse:
        closed_book = result.closed_book
        return cls(
            answer=result.answer,
            grounded=result.grounded,
            refused=result.refused,
            answer_source=result.answer_source,
            citations=Citation.of(result.citations),
            unsupported=[Span(start=s, end=e) for s, e in result.unsupported],
            supported_share=result.supported_share,
            language=result.language,
            generated_answer=result.generated_answer,
            sources=Source.of(result.sources),
            passages_dropped=result.passages_dropped,
            prompt_mode=result.prompt_mode,
            strategy=result.strategy,
            mode=result.mode,
            reasoning=result.reasoning,
            step_back_question=result.step_back_question,
            closed_book=ClosedBookAnswer.model_validate(closed_book, from_attributes=True)
            if closed_book
            else None,
            top_score=result.top_score,
            model=result.model,
            usage=Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens),
            timings_ms=Timings.model_validate(result.timings_ms),
        )


class RetrieveResponse(BaseModel):
    passages: list[Source]


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    embedding_model: str
    version: str
    created_at: str
    status: str = Field("ok", description="ok, or broken: its manifest cannot be read (see problem)")
    problem: str | None = None


class CollectionsResponse(BaseModel):
    collections: list[CollectionInfo]


class AdapterInfo(BaseModel):
    name: str
    base: str = Field(description="the base model the adapter applies to")
    path: str | None = None


class AdaptersResponse(BaseModel):
    adapters: list[AdapterInfo]
    collection_defaults: dict[str, str] = Field(
        description="collection -> adapter used when a request names none (RAGQA_COLLECTION_ADAPTERS)"
    )


class Health(BaseModel):
    status: str
    detail: str | None = Field(None, description="why not ok: the embedded LLM cannot be restarted")


class LLMProcess(BaseModel):
    """The embedded LLM child as its supervisor sees it (absent with RAGQA_LLM_BASE_URL)."""

    state: str = Field(description="running, restarting, failed or stopped")
    pid: int | None = None
    restarts: int = 0
    failed_restarts: int = 0
    last_exit: dict | None = Field(None, description="returncode, pid and time (epoch s) of the last death")


class Readiness(BaseModel):
    status: str
    llm: str
    llm_base_url: str
    collections: list[str]
    problems: list[str] = []
    llm_process: LLMProcess | None = None


class DocumentInfo(BaseModel):
    doc: str = Field(description="file name relative to the ingested folder, or the uploaded file's name")
    sha256: str
    chunks: int
    chars: int


class DocumentsResponse(BaseModel):
    collection: str
    version: str
    documents: list[DocumentInfo]


class SkippedFile(BaseModel):
    path: str
    reason: str


class WriteSummary(BaseModel):
    """What a write to a collection did: the same summary as `ragqa ingest --json`."""

    collection: str
    added: int
    updated: int
    unchanged: int
    deleted: int
    skipped: list[SkippedFile]
    chunks: int = Field(description="chunks in the collection after the write")
    embedded: int = Field(description="chunk texts sent to the embedding model")
    reused: int = Field(description="new chunks whose text was already embedded")
    near_duplicates: list[dict] = Field(
        description="pairs of chunks from different documents, cosine >= 0.98"
    )
    near_duplicate_pairs: int
    version: str | None
    seconds: float


class UploadedFile(BaseModel):
    filename: str = Field(description="the name the client sent")
    doc: str = Field(description="the sanitised document name it is stored under")


class UploadResponse(BaseModel):
    files: list[UploadedFile]
    summary: WriteSummary


class CollectionDeleted(BaseModel):
    collection: str
    deleted: bool = True
