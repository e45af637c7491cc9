"""Runs evaluation questions through the same pipeline as ``/v1/ask`` and scores them.

Two backends give the same answers: in-process (the pipeline the API serves with, built by
app/wiring.py) and over HTTP against a running ``ragqa serve`` (``--url``). The questions come
from ``dataset``, the answers from ``backends``, the scores from ``scoring``.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.evaluation.backends import Backend, EvalConfig, HttpBackend, InProcessBackend, ask_fields
from app.evaluation.dataset import EvalError, EvalQuestion, load_questions
from app.evaluation.scoring import (
    PASSAGE_HIT_K,
    RETRIEVAL_DEPTH,
    aggregate,
    aggregate_answers,
    aggregate_retrieval,
    failed,
    score_answer,
    score_retrieval,
)

__all__ = [  # the names importable from here before the split
    "PASSAGE_HIT_K",
    "RETRIEVAL_DEPTH",
    "Backend",
    "EvalConfig",
    "EvalError",
    "EvalQuestion",
    "EvalRun",
    "HttpBackend",
    "InProcessBackend",
    "aggregate",
    "aggregate_answers",
    "aggregate_retrieval",
    "ask_fields",
    "evaluate_question",
    "git_commit",
    "load_questions",
]


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
        record["retrieval"] = score_retrieval(q, passages)
    except Exception as exc:  # one failed question is recorded, not fatal
        record["retrieval"] = failed(exc)
    sides = {} if config.retrieval_only else {"rag": False}
    if config.closed_book and not config.retrieval_only:
        sides["closed_book"] = True
    for side, closed in sides.items():
        try:
            record[side] = score_answer(q, await backend.ask(q.question, config, closed))
        except Exception as exc:
            record[side] = failed(exc)
    return record


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
