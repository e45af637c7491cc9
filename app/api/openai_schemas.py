"""The OpenAI chat completions protocol as ragqa speaks it (in the style of vLLM's
entrypoints/openai/protocol.py). Unknown request fields are ignored, as OpenAI clients send
many; ragqa's extensions are ``top_k`` and ``prompt_mode`` in, ``sources`` and ``ragqa`` out."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.api.schemas import Citation, Source, no_lone_surrogates
from app.core.config import Settings
from app.rag.conversation import Condensed
from app.rag.grounding import AnswerSource
from app.rag.pipeline import AnswerMode, AskQuery, AskResult, Sampling
from app.rag.prompts import PromptMode

MODEL_PREFIX = "ragqa/"
Text = Annotated[str, AfterValidator(no_lone_surrogates)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: Text | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text").strip()
        return (self.content or "").strip()


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = Field(False, strict=True)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Text = Field(description="ragqa/<collection>, as listed by GET /v1/models")
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = Field(False, strict=True)
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0, strict=True)
    max_tokens: int | None = Field(None, ge=1, le=2048, strict=True)
    max_completion_tokens: int | None = Field(None, ge=1, le=2048, strict=True)
    n: int = Field(1, ge=1, le=1, description="one choice only", strict=True)
    # ragqa's extensions
    top_k: int | None = Field(None, ge=1, le=50, strict=True)
    prompt_mode: PromptMode = PromptMode.one_shot
    # A chat client expects the model to write the answer: rag, whatever RAGQA_DEFAULT_MODE says
    # for /v1/ask; the grounding stage still checks it and may quote instead.
    mode: Literal["rag", "extractive"] = Field("rag", description="rag, or extractive: quote the evidence")

    def collection(self) -> str:
        return self.model.removeprefix(MODEL_PREFIX)

    def answer_cap(self) -> int | None:
        # LangChain's ChatOpenAI sends max_completion_tokens; the openai SDK either.
        return self.max_completion_tokens or self.max_tokens

    def turns(self) -> list[tuple[str, str]]:
        """(role, text) of the user and assistant messages, in order."""
        return [(m.role, m.text()) for m in self.messages if m.role in ("user", "assistant")]

    def to_query(self, settings: Settings, question: str) -> AskQuery:
        """The pipeline's query for ``question`` (the last user message made standalone)."""
        collection = self.collection()
        return AskQuery(
            question=question,
            collection=collection,
            top_k=self.top_k or settings.top_k,
            prompt_mode=self.prompt_mode,
            sampling=Sampling(
                temperature=self.temperature if self.temperature is not None else 0.0,
                max_tokens=self.answer_cap() or settings.llm_default_max_tokens,
            ),
            mode=AnswerMode(self.mode),
            # the collection's LoRA adapter, as /v1/ask uses it
            adapter=settings.collection_adapters.get(collection),
        )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragqa"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> UsageInfo:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


def total_usage(result: AskResult, condensed: Condensed) -> UsageInfo:
    """The answer's tokens plus those spent condensing the chat history."""
    return UsageInfo.of(
        result.prompt_tokens + condensed.prompt_tokens,
        result.completion_tokens + condensed.completion_tokens,
    )


class RagqaInfo(BaseModel):
    """What ragqa adds to each response, besides the sources."""

    standalone_question: str = Field(description="the question retrieval and the prompt used")
    grounded: bool | None = None
    refused: bool | None = None
    prompt_mode: PromptMode
    llm_model: str | None = None
    passages_dropped: int | None = None
    timings_ms: dict[str, float | None] | None = None
    answer_source: AnswerSource | None = None
    # Streamed: the answer the grounding stage gave instead of the streamed text, if it did.
    answer: str | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = "stop"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    sources: list[Source]
    citations: list[Citation] = Field(default_factory=list)
    ragqa: RagqaInfo

    @classmethod
    def from_result(cls, model: str, result: AskResult, condensed: Condensed) -> ChatCompletionResponse:
        return cls(
            model=model,
            choices=[
                ChatCompletionChoice(
                    message=AssistantMessage(content=result.answer),
                    finish_reason=result.finish_reason or "stop",
                )
            ],
            usage=total_usage(result, condensed),
            sources=Source.of(result.sources),
            citations=Citation.of(result.citations),
            ragqa=RagqaInfo(
                standalone_question=condensed.question,
                grounded=result.grounded,
                refused=result.refused,
                prompt_mode=result.prompt_mode,
                llm_model=result.model,
                passages_dropped=result.passages_dropped,
                timings_ms=result.timings_ms,
                answer_source=result.answer_source,
            ),
        )


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageInfo | None = None
    # The first chunk carries the sources; the last one with a finish reason carries ragqa
    # and the citations.
    sources: list[Source] | None = None
    citations: list[Citation] | None = None
    ragqa: RagqaInfo | None = None
