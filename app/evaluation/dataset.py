"""Evaluation questions: the questions.jsonl format of shared/eval, with BEIR-style relevance."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path


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
