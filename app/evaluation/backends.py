"""Where the evaluation's answers come from: the pipeline in-process, or a running server.

Both send the same /v1/ask request (``ask_fields``); in-process it is mapped to the pipeline's
query by ``AskRequest.to_query``, as the API maps it, and the reply by ``AskResponse.from_result``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx

from app.core.embeddings import thresholds_for
from app.evaluation.dataset import EvalError
from app.rag.pipeline import AnswerMode
from app.rag.prompts import PromptMode, Strategy


@dataclass(frozen=True)
class EvalConfig:
    collection: str
    prompt_mode: PromptMode
    top_k: int
    max_tokens: int
    closed_book: bool = False
    retrieval_only: bool = False
    concurrency: int = 1
    temperature: float = 0.0
    strategy: Strategy = Strategy.direct  # the RAG side's; closed-book answers directly
    shots: int | None = None  # few_shot's k; None: the server's default
    mode: AnswerMode | None = None  # the RAG side's (rag or extractive); None: the server's default


class Backend(Protocol):
    async def retrieve(self, question: str, collection: str, top_k: int) -> list[dict]: ...
    async def ask(self, question: str, config: EvalConfig, closed_book: bool) -> dict: ...
    async def describe(self, collection: str) -> dict: ...


def ask_fields(question: str, config: EvalConfig, closed_book: bool) -> dict[str, Any]:
    """The /v1/ask request of one evaluation answer, the same for both backends."""
    fields: dict[str, Any] = {
        "question": question,
        "collection": config.collection,
        "top_k": config.top_k,
        "prompt_mode": config.prompt_mode,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "strategy": config.strategy,
    }
    if config.shots is not None:
        fields["shots"] = config.shots
    if config.mode is not None:
        fields["mode"] = config.mode
    if closed_book:  # nothing is retrieved, so top_k would be refused
        fields.update(mode=AnswerMode.closed_book, strategy=Strategy.direct)
        del fields["top_k"]
    return fields


class InProcessBackend:
    """The pipeline objects the API serves with, called directly."""

    def __init__(self, services):
        self.services = services

    async def retrieve(self, question: str, collection: str, top_k: int) -> list[dict]:
        from app.api.schemas import Source

        passages = await self.services.pipeline.retrieve(question, collection, top_k)
        return [source.model_dump() for source in Source.of(passages)]  # as /v1/retrieve's JSON

    async def ask(self, question: str, config: EvalConfig, closed_book: bool) -> dict:
        from app.api.schemas import AskRequest, AskResponse

        # The body the HTTP backend posts, mapped as /v1/ask maps it. Built without validation
        # so the question reaches the pipeline as written (the API strips it).
        request = AskRequest.model_construct(**ask_fields(question, config, closed_book))
        result = await self.services.pipeline.run(request.to_query(self.services.settings))
        # exclude_none: the reply holds what the API's JSON holds, less its empty fields.
        return AskResponse.from_result(result).model_dump(mode="json", exclude_none=True)

    async def describe(self, collection: str) -> dict:
        store = self.services.store
        manifest = store.read_manifest(collection)
        # warnings=False: the LLM URL of a started embedded server is set as a plain str.
        settings = self.services.settings.model_dump(mode="json", exclude={"llm_api_key"}, warnings=False)
        # The cosine thresholds in force for this collection: its embedding model's unless set.
        settings.update(asdict(thresholds_for(self.services.settings, manifest.embedding.model)))
        return {
            "backend": "in-process",
            "collection_version": manifest.version,
            "index_manifest_sha256": hashlib.sha256(manifest.model_dump_json().encode("utf-8")).hexdigest(),
            "embedding_model": manifest.embedding.model,
            "chunks": manifest.chunk_count,
            "documents": len(manifest.documents),
            "settings": settings,
        }


class HttpBackend:
    """A running ragqa server: POST /v1/retrieve and /v1/ask."""

    def __init__(self, url: str, timeout_s: float = 600.0):
        self.url = url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s)

    async def _post(self, route: str, body: dict) -> dict:
        response = await self.client.post(route, json=body)
        if response.status_code != 200:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:200]
            raise EvalError(f"{route} answered {response.status_code}: {detail}")
        return response.json()

    async def retrieve(self, question: str, collection: str, top_k: int) -> list[dict]:
        body = {"question": question, "collection": collection, "top_k": top_k}
        return (await self._post("/v1/retrieve", body))["passages"]

    async def ask(self, question: str, config: EvalConfig, closed_book: bool) -> dict:
        return await self._post("/v1/ask", ask_fields(question, config, closed_book))

    async def describe(self, collection: str) -> dict:
        try:
            response = await self.client.get("/v1/collections")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise EvalError(f"cannot reach ragqa at {self.url}: {exc}") from exc
        entries = {c["name"]: c for c in response.json()["collections"]}
        if collection not in entries:
            raise EvalError(f"{self.url} has no collection {collection!r}: {sorted(entries)}")
        entry = entries[collection]
        return {
            "backend": f"http {self.url}",
            "collection_version": entry["version"],
            # The server does not publish its manifest; its version names the index build.
            "index_manifest_sha256": None,
            "embedding_model": entry["embedding_model"],
            "chunks": entry["chunks"],
            "documents": entry["documents"],
            "settings": None,
        }

    async def aclose(self) -> None:
        await self.client.aclose()
