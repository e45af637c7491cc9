"""Runs evaluation questions through the same pipeline as ``/v1/ask`` and scores them.

Two backends give the same answers: in-process (``Services.build`` + ``AskPipeline.run``, what
the API's router calls) and over HTTP against a running ``ragqa serve`` (``--url``).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from app.evaluation import metrics
from app.rag.pipeline import AnswerMode
from app.rag.prompts import PromptMode, Strategy, is_refusal

# Retrieval is scored to this depth whatever top_k the answers use: hit@1..10 and MRR@10.
RETRIEVAL_DEPTH = 10
PASSAGE_HIT_K = 5


class EvalError(Exception):
    """The evaluation cannot start: bad question file, unknown collection, unreachable server."""


@dataclass
class EvalQuestion:
    id: str
    question: str
    answers: list[str]
    doc: str | None
    answerable: bool
    # doc -> graded relevance, from `relevant_docs` or a qrels.tsv; None when not given.
    relevance: dict[str, float] | None = None

    @property
    def relevant_docs(self) -> set[str]:
        if self.relevance is not None:
            return {d for d, g in self.relevance.items() if g > 0}
        return {self.doc} if self.doc else set()


def _read_qrels(path: Path) -> dict[str, dict[str, float]]:
    """BEIR qrels: tab-separated `query-id corpus-id score`, with an optional header line."""
    qrels: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t")):
            if not row or (n == 0 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise EvalError(f"{path}:{n + 1}: expected `query-id<TAB>corpus-id<TAB>score`")
            qrels.setdefault(row[0], {})[row[1]] = float(row[2])
    return qrels


def load_questions(
    path: Path, limit: int | None = None, sample: int | None = None, seed: int = 0
) -> list[EvalQuestion]:
    """The questions.jsonl format of shared/eval, plus BEIR-style relevance if present.

    ``limit`` keeps the first N; ``sample`` keeps N drawn with ``seed``, in file order (the
    shared files are grouped by document, so their first lines cover few documents).
    """
    if not path.is_file():
        raise EvalError(f"question file not found: {path}")
    qrels_path = path.with_name("qrels.tsv")
    qrels = _read_qrels(qrels_path) if qrels_path.is_file() else {}
    questions: list[EvalQuestion] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid, text = str(row["id"]), row["question"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalError(f"{path}:{n}: not a question record ({exc})") from exc
        answers = list(row.get("answers") or [])
        relevance = qrels.get(qid)
        if row.get("relevant_docs") is not None:
            relevance = {str(d): 1.0 for d in row["relevant_docs"]}
        questions.append(
            EvalQuestion(
                id=qid,
                question=text,
                answers=answers,
                doc=row.get("doc"),
                answerable=bool(row.get("answerable", bool(answers))),
                relevance=relevance,
            )
        )
        if limit is not None and len(questions) >= limit:
            break
    if not questions:
        raise EvalError(f"{path} holds no questions")
    if sample is not None and sample < len(questions):
        keep = set(random.Random(seed).sample(range(len(questions)), sample))
        questions = [q for i, q in enumerate(questions) if i in keep]
    return questions


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
    if closed_book:  # nothing is retrieved, so top_k would be refused
        fields.update(mode=AnswerMode.closed_book, strategy=Strategy.direct)
        del fields["top_k"]
    return fields


class InProcessBackend:
    """The pipeline objects the API serves with, called directly."""

    def __init__(self, services):
        self.services = services

    async def retrieve(self, question: str, collection: str, top_k: int) -> list[dict]:
        passages = await self.services.pipeline.retrieve(question, collection, top_k)
        return [asdict(p) for p in passages]

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
        settings = self.services.settings.model_dump(
            mode="json", exclude={"llm_api_key"}, warnings=False
        )
        return {
            "backend": "in-process",
            "collection_version": manifest.version,
            "index_manifest_sha256": hashlib.sha256(
                manifest.model_dump_json().encode("utf-8")
            ).hexdigest(),
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


# ---- one question ------------------------------------------------------------------------------


def _score_answer(q: EvalQuestion, reply: dict) -> dict:
    answer = reply["answer"]
    refused = is_refusal(answer)
    # A refusal is the empty prediction of SQuAD v2.0's scoring.
    prediction = "" if refused else answer
    golds = q.answers if q.answerable else [""]
    return {
        "answer": answer,
        "refused": refused,
        "em": metrics.max_over_golds(metrics.exact_match, prediction, golds),
        "f1": metrics.max_over_golds(metrics.token_f1, prediction, golds),
        "contains_gold": q.answerable and not refused and metrics.contains_gold(answer, q.answers),
        "sources": [
            {k: s[k] for k in ("id", "doc", "score", "rank")} for s in reply.get("sources", [])
        ],
        "model": reply.get("model"),
        "prompt_tokens": reply["usage"]["prompt_tokens"],
        "completion_tokens": reply["usage"]["completion_tokens"],
        "timings_ms": reply["timings_ms"],
        # rag: the best retrieved similarity, to replay other refusal thresholds offline.
        "top_score": reply.get("top_score"),
        "reasoning": reply.get("reasoning"),
        "step_back_question": reply.get("step_back_question"),
        "error": None,
    }


def _failed(exc: Exception) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}"}


async def evaluate_question(backend: Backend, q: EvalQuestion, config: EvalConfig) -> dict:
    record: dict[str, Any] = {
        "id": q.id,
        "question": q.question,
        "answers": q.answers,
        "doc": q.doc,
        "answerable": q.answerable,
        "relevance": q.relevance,
    }
    depth = max(RETRIEVAL_DEPTH, config.top_k)
    try:
        passages = await backend.retrieve(q.question, config.collection, depth)
        docs = [p["doc"] for p in passages]
        relevant = q.relevant_docs
        record["retrieval"] = {
            "retrieved": [{k: p[k] for k in ("id", "doc", "score", "rank")} for p in passages],
            # Passage rank of the first chunk of a relevant document; None if not in the top 10.
            "first_relevant_rank": metrics.first_relevant_rank(docs, relevant, RETRIEVAL_DEPTH),
            "mrr": metrics.reciprocal_rank(docs, relevant, RETRIEVAL_DEPTH),
            "passage_hit_at_5": (
                metrics.passage_hit(
                    [(p["doc"], p["text"]) for p in passages[:PASSAGE_HIT_K]], q.doc, q.answers
                )
                if q.answerable and q.doc
                else None
            ),
            "ndcg_at_10": (
                metrics.ndcg_at_k(docs, q.relevance, RETRIEVAL_DEPTH, [p["score"] for p in passages])
                if q.relevance is not None
                else None
            ),
            "error": None,
        }
    except Exception as exc:  # one failed question is recorded, not fatal
        record["retrieval"] = _failed(exc)
    sides = {} if config.retrieval_only else {"rag": False}
    if config.closed_book and not config.retrieval_only:
        sides["closed_book"] = True
    for side, closed in sides.items():
        try:
            record[side] = _score_answer(q, await backend.ask(q.question, config, closed))
        except Exception as exc:
            record[side] = _failed(exc)
    return record


# ---- aggregates --------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _rate(flags: list[bool]) -> float | None:
    return _mean([float(f) for f in flags])


def aggregate_retrieval(records: list[dict]) -> dict:
    ok = [r["retrieval"] for r in records if r["retrieval"].get("error") is None]
    passage = [r["passage_hit_at_5"] for r in ok if r["passage_hit_at_5"] is not None]
    ndcg = [r["ndcg_at_10"] for r in ok if r["ndcg_at_10"] is not None]
    with_relevant = [
        r["retrieval"]
        for r in records
        if r["retrieval"].get("error") is None and (r["relevance"] is not None or r["doc"])
    ]
    return {
        "questions": len(with_relevant),
        "errors": len(records) - len(ok),
        "hit_at": {
            str(k): _rate(
                [
                    r["first_relevant_rank"] is not None and r["first_relevant_rank"] <= k
                    for r in with_relevant
                ]
            )
            for k in range(1, RETRIEVAL_DEPTH + 1)
        },
        "mrr_at_10": _mean([r["mrr"] for r in with_relevant]),
        "passage_hit_at_5": _rate(passage),
        "ndcg_at_10": _mean(ndcg),
    }


def _latency(values: list[float]) -> dict:
    return {"p50": metrics.percentile(values, 50), "p95": metrics.percentile(values, 95)}


def aggregate_answers(records: list[dict], side: str) -> dict:
    ok = [r for r in records if side in r and r[side].get("error") is None]
    answerable = [r for r in ok if r["answerable"]]
    unanswerable = [r for r in ok if not r["answerable"]]
    replies = [r[side] for r in ok]
    return {
        "questions": len(ok),
        "errors": len([r for r in records if side in r]) - len(ok),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        # EM and F1 over answerable questions (a refusal there scores 0).
        "em": _mean([r[side]["em"] for r in answerable]),
        "f1": _mean([r[side]["f1"] for r in answerable]),
        "contains_gold": _rate([r[side]["contains_gold"] for r in answerable]),
        "false_refusal_rate": _rate([r[side]["refused"] for r in answerable]),
        "correct_refusal_rate": _rate([r[side]["refused"] for r in unanswerable]),
        "confabulation_rate": _rate([not r[side]["refused"] for r in unanswerable]),
        "latency_ms": {
            stage: _latency([x["timings_ms"][stage] for x in replies])
            for stage in ("retrieve", "generate", "total")
        },
        "tokens": {
            "prompt": sum(x["prompt_tokens"] for x in replies),
            "completion": sum(x["completion_tokens"] for x in replies),
        },
    }


DIFF_KEYS = ("em", "f1", "contains_gold", "false_refusal_rate", "correct_refusal_rate", "confabulation_rate")


def aggregate(records: list[dict]) -> dict:
    out: dict[str, Any] = {"retrieval": aggregate_retrieval(records)}
    if any("rag" in r for r in records):
        out["rag"] = aggregate_answers(records, "rag")
    if any("closed_book" in r for r in records):
        out["closed_book"] = aggregate_answers(records, "closed_book")
        out["rag_minus_closed_book"] = {
            key: (
                out["rag"][key] - out["closed_book"][key]
                if out["rag"][key] is not None and out["closed_book"][key] is not None
                else None
            )
            for key in DIFF_KEYS
        }
    return out


# ---- the run -----------------------------------------------------------------------------------


def git_commit(repo: Path) -> dict:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class EvalRun:
    questions_path: Path
    questions: list[EvalQuestion]
    config: EvalConfig
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    on_progress: Callable[[int, int], None] | None = field(default=None, repr=False)

    async def run(self, backend: Backend) -> dict:
        environment = await backend.describe(self.config.collection)
        code = git_commit(Path(__file__).resolve().parents[2])  # the code that runs, read before
        semaphore = asyncio.Semaphore(self.config.concurrency)
        done = 0

        async def one(q: EvalQuestion) -> dict:
            nonlocal done
            async with semaphore:
                record = await evaluate_question(backend, q, self.config)
            done += 1
            if self.on_progress:
                self.on_progress(done, len(self.questions))
            return record

        started = time.perf_counter()
        records = await asyncio.gather(*(one(q) for q in self.questions))
        seconds = time.perf_counter() - started
        llm_models = sorted(
            {r[s]["model"] for r in records for s in ("rag", "closed_book") if r.get(s, {}).get("model")}
        )
        return {
            "run": {
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(seconds, 1),
                "questions_file": str(self.questions_path),
                "questions_sha256": _sha256(self.questions_path),
                "limit": self.limit,
                "sample": self.sample,
                "config": {
                    **asdict(self.config),
                    "prompt_mode": str(self.config.prompt_mode),
                    "strategy": str(self.config.strategy),
                },
                # Only --sample draws at random; decoding is greedy (temperature 0).
                "seed": self.seed,
                "temperature": self.config.temperature,
                "llm_models": llm_models,
                "git": code,
                **environment,
            },
            "aggregate": aggregate(records),
            "questions": records,
        }
