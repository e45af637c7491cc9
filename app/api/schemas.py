"""Request and response bodies of the REST API (the contract in DESIGN.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.store import COLLECTION_NAME_PATTERN
from app.rag.prompts import PromptMode
from app.rag.retrieval import RetrievalMode

CollectionName = Annotated[str, StringConstraints(pattern=COLLECTION_NAME_PATTERN)]
Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    Field(description="1-4,000 characters after stripping", examples=["What is ragqa?"]),
]


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Question
    collection: CollectionName = "default"
    top_k: int | None = Field(None, ge=1, le=50, description="passages to retrieve; default from settings")
    retrieval: RetrievalMode | None = Field(
        None, description="dense, bm25 or hybrid (both fused by RRF); default from settings"
    )
    diversity: float | None = Field(
        None, ge=0.0, le=1.0, description="MMR re-ranking: 0 = off, higher = fewer near-duplicates"
    )


class AskRequest(RetrieveRequest):
    prompt_mode: PromptMode = PromptMode.one_shot
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(
        None, ge=1, le=2048, description="answer length cap; default from settings"
    )


class Source(BaseModel):
    id: int
    doc: str = Field(description="file name relative to the ingested folder")
    text: str
    score: float = Field(description="cosine similarity to the question, in every retrieval mode")
    rank: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Timings(BaseModel):
    retrieve: float
    pack: float
    generate: float
    total: float


class AskResponse(BaseModel):
    answer: str
    grounded: bool = Field(
        description="false when the model refused or no passage reached the relevance threshold"
    )
    refused: bool = Field(description="the model said the documents do not hold the answer")
    sources: list[Source] = Field(description="the passages the model saw, in rank order")
    passages_dropped: int = Field(description="retrieved passages left out to fit the context window")
    prompt_mode: PromptMode
    model: str
    usage: Usage
    timings_ms: Timings


class RetrieveResponse(BaseModel):
    passages: list[Source]


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    embedding_model: str
    version: str
    created_at: str


class CollectionsResponse(BaseModel):
    collections: list[CollectionInfo]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    llm: str
    llm_base_url: str
    collections: list[str]
    problems: list[str] = []
