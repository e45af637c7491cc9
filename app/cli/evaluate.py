"""`ragqa eval`: score retrieval and answers on a question set."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.common import IndexDirOption, cli, err, settings_for
from app.rag.modes import PromptMode, Strategy
from app.rag.pipeline import AnswerMode


class AnswerModeChoice(StrEnum):
    """The answer modes that retrieve (closed-book is --closed-book)."""

    rag = "rag"
    extractive = "extractive"


@cli.command("eval")
def eval_(
    questions: Annotated[Path, typer.Argument(help="questions.jsonl (shared/eval format)")],
    collection: Annotated[str, typer.Option(help="collection holding the questions' documents")],
    out: Annotated[Path | None, typer.Option(help="report JSON; a PNG is written beside it")] = None,
    prompt_mode: Annotated[PromptMode, typer.Option(help="the prompt's exemplars")] = PromptMode.one_shot,
    strategy: Annotated[Strategy, typer.Option(help="the RAG side's strategy")] = Strategy.direct,
    shots: Annotated[int | None, typer.Option(min=1, help="few_shot's exemplars")] = None,
    answer_mode: Annotated[
        AnswerModeChoice | None,
        typer.Option("--mode", help="the RAG side's mode; default RAGQA_DEFAULT_MODE"),
    ] = None,
    refusal_min_score: Annotated[
        float | None,
        typer.Option(
            min=-1.0, max=1.0, help="in-process: RAGQA_REFUSAL_MIN_SCORE for this run; -1 asks the LLM always"
        ),
    ] = None,
    top_k: Annotated[int | None, typer.Option(help="passages per answer; default RAGQA_TOP_K")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="answer length cap")] = None,
    closed_book: Annotated[bool, typer.Option(help="also ask with no passages, and compare")] = False,
    retrieval_only: Annotated[bool, typer.Option(help="score retrieval only; no LLM")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N questions")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="N questions drawn with --seed")] = None,
    seed: Annotated[int, typer.Option(help="seed of --sample")] = 0,
    url: Annotated[str | None, typer.Option(help="a running ragqa server; default in-process")] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="questions in flight; the embedded LLM serves one at a time")
    ] = 1,
    index_dir: IndexDirOption = None,
) -> None:
    """Score retrieval and answers on a question set, through the same pipeline as /v1/ask."""
    import asyncio

    from app.evaluation import report as reports
    from app.evaluation.runner import EvalConfig, EvalError, EvalRun, HttpBackend, load_questions

    settings = settings_for(index_dir)
    mode, rag_strategy = prompt_mode, strategy
    if refusal_min_score is not None:
        if url:
            err.print("[red]--refusal-min-score applies in-process:[/red] set it on the server")
            raise typer.Exit(2)
        settings = settings.model_copy(update={"refusal_min_score": refusal_min_score})
    config = EvalConfig(
        collection=collection,
        prompt_mode=mode,
        top_k=top_k or settings.top_k,
        max_tokens=max_tokens or settings.llm_default_max_tokens,
        closed_book=closed_book,
        retrieval_only=retrieval_only,
        concurrency=concurrency,
        strategy=rag_strategy,
        shots=shots,
        mode=AnswerMode(answer_mode.value) if answer_mode else None,
    )
    suffix = "" if rag_strategy is Strategy.direct else f"-{rag_strategy}"
    suffix += f"-{answer_mode.value}" if answer_mode else ""
    out = out or Path("reports") / f"eval-{collection}-{mode}{suffix}.json"
    progress = Progress(
        TextColumn("questions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    task = progress.add_task("eval", total=None)

    async def run_in_process(evaluation: EvalRun) -> dict:
        from app.evaluation.runner import InProcessBackend
        from app.wiring import build_services, running_llm

        # The embedded LLM as `ragqa serve` starts it; none when nothing will call it.
        with running_llm(settings, needed=not retrieval_only) as ready:
            services = build_services(ready)
            try:
                return await evaluation.run(InProcessBackend(services))
            finally:
                await services.aclose()

    async def run_over_http(evaluation: EvalRun) -> dict:
        assert url is not None
        backend = HttpBackend(url)
        try:
            return await evaluation.run(backend)
        finally:
            await backend.aclose()

    try:
        evaluation = EvalRun(
            questions,
            load_questions(questions, limit, sample, seed),
            config,
            limit=limit,
            sample=sample,
            seed=seed,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
        with progress:
            result = asyncio.run(run_over_http(evaluation) if url else run_in_process(evaluation))
    except Exception as exc:
        from app.core.store import StoreError
        from app.llm.embedded import EmbeddedLLMError

        if not isinstance(exc, (EvalError, StoreError, EmbeddedLLMError, ValueError)):
            raise
        err.print(f"[red]eval failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    reports.write_json(result, out)
    reports.plot(result, out.with_suffix(".png"))
    print(reports.markdown(result))
    err.print(f"report: {out}  plot: {out.with_suffix('.png')}")
