"""The ``ragqa`` command: the composition root that wires the ingest job and the service together."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.core.config import Settings, get_settings

cli = typer.Typer(help="ragqa: answers questions from your own documents.", no_args_is_help=True)
err = Console(stderr=True)


def _settings(index_dir: Path | None) -> Settings:
    settings = get_settings()
    return settings.model_copy(update={"index_dir": index_dir}) if index_dir else settings


@cli.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="folder of documents to ingest")],
    collection: Annotated[str, typer.Option(help="collection to write")] = "default",
    index_dir: Annotated[Path | None, typer.Option(help="default: RAGQA_INDEX_DIR")] = None,
    prune: Annotated[bool, typer.Option(help="remove documents gone from the folder")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="end with the summary as one JSON line")] = False,
    outliers: Annotated[bool, typer.Option(help="also report chunks far from every other chunk")] = False,
    allow_empty: Annotated[
        bool, typer.Option(help="sync a folder with no document: removes every document of the collection")
    ] = False,
) -> None:
    """Sync a folder into a collection: add, update and delete only what changed.

    A folder with no document in it changes nothing (exit 0) unless --allow-empty."""
    from app.core.embeddings import LazyEmbeddingModel
    from app.core.store import IndexStore, StoreError
    from ingest.run import IngestError, IngestJob, IngestProgress
    from ingest.splitting import TextSplitter

    settings = _settings(index_dir)
    # Loaded when the first chunk needs embedding: re-ingesting an unchanged folder takes a second.
    embedder = LazyEmbeddingModel(settings.embedding_model, settings.embedding_batch_size)
    job = IngestJob(
        IndexStore(settings.index_dir),
        embedder,
        TextSplitter(settings.chunk_size, settings.chunk_overlap),
        max_file_bytes=settings.ingest_max_file_bytes,
    )
    progress = Progress(
        TextColumn("{task.description:>6}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err,
    )  # fmt: skip
    files_task = progress.add_task("files", total=None)
    chunks_task = progress.add_task("chunks", total=None)

    def on_progress(p: IngestProgress) -> None:
        progress.update(files_task, completed=p.files_done, total=p.files_total)
        progress.update(chunks_task, completed=p.chunks_done)

    try:
        with progress:
            summary = job.run(
                path, collection, prune=prune, outliers=outliers, on_progress=on_progress, allow_empty=allow_empty
            )
    except (IngestError, StoreError, ValueError) as exc:
        err.print(f"[red]ingest failed:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    except PermissionError as exc:  # e.g. a container's uid that cannot write the mounted index folder
        err.print(
            f"[red]ingest failed:[/red] cannot write the index folder {settings.index_dir} as uid {os.getuid()}"
            f" ({exc.strerror}: {exc.filename}). Make it writable by that user, e.g."
            f" `chown -R {os.getuid()} {settings.index_dir}` on the host folder, or use a named volume.",
            soft_wrap=True,
        )
        raise typer.Exit(2) from exc
    if summary.reason:
        err.print(f"[yellow]nothing ingested:[/yellow] {summary.reason}; --allow-empty empties it", soft_wrap=True)

    table = Table(title=f"ingested {path} into {collection!r}")
    for column in ("added", "updated", "unchanged", "deleted", "skipped", "chunks", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(x) for x in (summary.added, summary.updated, summary.unchanged, summary.deleted)),
        str(len(summary.skipped)), str(summary.chunks), f"{summary.seconds:.1f}",
    )  # fmt: skip
    out = Console(stderr=as_json)  # keep stdout's last line for the JSON summary
    out.print(table)
    for skipped in summary.skipped:
        out.print(f"  skipped {skipped['path']}: {skipped['reason']}")
    if summary.near_duplicate_pairs:
        out.print(f"  {summary.near_duplicate_pairs} near-duplicate chunk pairs across documents (cosine >= 0.98):")
        for pair in summary.near_duplicates[:10]:
            a, b = pair["a"], pair["b"]
            out.print(f"    {pair['score']:.3f}  {a['doc']} @{a['start']}  ~  {b['doc']} @{b['start']}")
    for outlier in summary.outliers or []:
        out.print(f"  outlier {outlier['doc']} @{outlier['start']}: nearest chunk cosine {outlier['nearest_cosine']:.3f}")
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Start the API. Without RAGQA_LLM_BASE_URL, start the embedded LLM server first."""
    import uvicorn

    from app.api.main import create_app
    from app.llm.embedded import EmbeddedLLMError, llm_for

    from app.api.logs import configure_logging

    settings = get_settings()
    configure_logging(log_level, settings.log_format)
    if settings.index_dir.exists() and not os.access(settings.index_dir, os.W_OK | os.X_OK):
        err.print(
            f"[yellow]warning:[/yellow] the index folder {settings.index_dir} is not writable by uid {os.getuid()}:"
            " uploads and ingests will fail and /readyz answers 503 (chown it, or use a named volume)",
            soft_wrap=True,
        )
    embedded = settings.llm_base_url is None
    # Until uvicorn takes over signal handling, make SIGTERM unwind so the child is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if embedded:
            err.print("starting the embedded LLM server")
        with llm_for(settings) as ready:  # the same embedded server `ragqa eval` starts
            if embedded:
                err.print(f"embedded LLM ready at {ready.llm_base_url}")
            # log_config=None: uvicorn keeps the JSON logging configured above.
            # A bounded graceful shutdown: an answer in flight must not hold SIGTERM up for minutes.
            uvicorn.run(
                create_app(ready),
                host=host,
                port=port,
                log_level=log_level,
                log_config=None,
                timeout_graceful_shutdown=10,
            )
    except EmbeddedLLMError as exc:
        err.print(f"[red]cannot start the embedded LLM:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc


@cli.command("eval")
def eval_(
    questions: Annotated[Path, typer.Argument(help="questions.jsonl (shared/eval format)")],
    collection: Annotated[str, typer.Option(help="collection holding the questions' documents")],
    out: Annotated[Path | None, typer.Option(help="report JSON; a PNG is written beside it")] = None,
    prompt_mode: Annotated[str, typer.Option(help="zero_shot, one_shot or few_shot")] = "one_shot",
    strategy: Annotated[str, typer.Option(help="direct, cot or step_back (the RAG side)")] = "direct",
    shots: Annotated[int | None, typer.Option(min=1, help="few_shot's exemplars")] = None,
    refusal_min_score: Annotated[
        float | None,
        typer.Option(help="in-process: RAGQA_REFUSAL_MIN_SCORE for this run; -1 asks the LLM always"),
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
    index_dir: Annotated[Path | None, typer.Option(help="default: RAGQA_INDEX_DIR")] = None,
) -> None:
    """Score retrieval and answers on a question set, through the same pipeline as /v1/ask."""
    import asyncio

    from app.evaluation import report as reports
    from app.evaluation.runner import EvalConfig, EvalError, EvalRun, HttpBackend, load_questions
    from app.rag.prompts import PromptMode, Strategy

    settings = _settings(index_dir)
    try:
        mode = PromptMode(prompt_mode)
    except ValueError:
        err.print(f"[red]unknown prompt mode {prompt_mode!r}:[/red] use {', '.join(PromptMode)}")
        raise typer.Exit(2) from None
    try:
        rag_strategy = Strategy(strategy)
    except ValueError:
        err.print(f"[red]unknown strategy {strategy!r}:[/red] use {', '.join(Strategy)}")
        raise typer.Exit(2) from None
    if refusal_min_score is not None:
        if url:
            err.print("[red]--refusal-min-score applies in-process:[/red] set it on the server")
            raise typer.Exit(2)
        if not -1.0 <= refusal_min_score <= 1.0:
            err.print("[red]--refusal-min-score must lie in [-1, 1][/red]")
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
    )
    suffix = "" if rag_strategy is Strategy.direct else f"-{rag_strategy}"
    out = out or Path("reports") / f"eval-{collection}-{mode}{suffix}.json"
    progress = Progress(
        TextColumn("questions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    task = progress.add_task("eval", total=None)

    async def run_in_process(evaluation: EvalRun) -> dict:
        from contextlib import nullcontext

        from app.api.services import Services
        from app.evaluation.runner import InProcessBackend
        from app.llm.embedded import llm_for

        if retrieval_only:  # Services wants an LLM URL, but nothing will call it
            unused = settings.llm_base_url or "http://127.0.0.1:9/v1"
            llm = nullcontext(settings.model_copy(update={"llm_base_url": unused}))
        else:
            llm = llm_for(settings)
        with llm as ready:
            services = Services.build(ready)
            try:
                return await evaluation.run(InProcessBackend(services))
            finally:
                await services.aclose()

    async def run_over_http(evaluation: EvalRun) -> dict:
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


@cli.command("eval-table")
def eval_table(
    reports: Annotated[list[Path], typer.Argument(help="eval report JSON files")],
    same_questions: Annotated[
        bool, typer.Option(help="score all reports on the questions they share")
    ] = False,
) -> None:
    """One markdown row per eval report: answers by prompt mode and strategy, closed-book beside."""
    from app.evaluation import report as reports_

    try:
        loaded = [json.loads(p.read_text(encoding="utf-8")) for p in reports]
        print(reports_.comparison(loaded, same_questions))
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[red]cannot read the reports:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


@cli.command("refusal-curve")
def refusal_curve(
    report: Annotated[Path, typer.Argument(help="an eval report JSON, best run with --refusal-min-score -1")],
    out: Annotated[Path | None, typer.Option(help="PNG; default: beside the report")] = None,
    max_f1_cost: Annotated[
        float, typer.Option(min=0, max=100, help="F1 points the threshold may cost on answerable questions")
    ] = 5.0,
    any_model: Annotated[
        bool,
        typer.Option(help="also bound the F1 a perfect model would lose: false refusals within the budget"),
    ] = True,
) -> None:
    """Replay refusal thresholds on an eval report: confabulation and F1 per threshold, and the
    threshold with the least confabulation within the F1 budget."""
    from app.evaluation import calibration

    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        curve = calibration.refusal_curve(data)
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[red]cannot calibrate on {report}:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    try:
        chosen = calibration.choose_threshold(curve, max_f1_cost / 100, any_model)
    except calibration.CalibrationError as exc:  # e.g. squad-v1.1: the curve alone still informs
        err.print(f"no threshold chosen: {exc}")
        chosen = None
    out = out or report.with_name(report.stem + "-refusal-curve.png")
    config = data["run"]["config"]
    title = f"{Path(data['run']['questions_file']).parent.name}: {config['prompt_mode']}, {config.get('strategy', 'direct')}"
    calibration.plot(curve, chosen, out, title)
    print(json.dumps({
        "report": str(report), "max_f1_cost": max_f1_cost, "any_model": any_model, "chosen": chosen, "curve": curve
    }))  # fmt: skip
    print(calibration.markdown(curve, chosen))
    err.print(f"plot: {out}")


collections_cli = typer.Typer(help="List or delete collections.", no_args_is_help=True)
cli.add_typer(collections_cli, name="collections")


@collections_cli.command("list")
def collections_list(
    index_dir: Annotated[Path | None, typer.Option(help="default: RAGQA_INDEX_DIR")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The collections under the index folder, with their size and live version."""
    from app.core.store import IndexStore, StoreError

    store = IndexStore(_settings(index_dir).index_dir)
    rows = []
    for name in store.list_collections():
        try:
            manifest = store.read_manifest(name)
        except StoreError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append({
            "name": name, "documents": len(manifest.documents), "chunks": manifest.chunk_count,
            "embedding_model": manifest.embedding.model, "version": manifest.version,
            "created_at": manifest.created_at,
        })  # fmt: skip
    if as_json:
        print(json.dumps({"collections": rows}, ensure_ascii=False))
        return
    table = Table(title=f"collections in {store.root}")
    for column in ("name", "documents", "chunks", "embedding_model", "version", "created_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], *(str(row.get(c, row.get("error", ""))) for c in
                      ("documents", "chunks", "embedding_model", "version", "created_at")))  # fmt: skip
    Console().print(table)


@collections_cli.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="collection to delete")],
    index_dir: Annotated[Path | None, typer.Option(help="default: RAGQA_INDEX_DIR")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a collection with all its versions (waits for a running ingest of it to finish)."""
    from app.core.store import IndexStore, StoreError

    store = IndexStore(_settings(index_dir).index_dir)
    try:
        store.read_manifest(name)
        if not yes:
            typer.confirm(f"delete collection {name!r} in {store.root}?", abort=True)
        store.delete(name)
    except StoreError as exc:
        err.print(f"[red]cannot delete:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    err.print(f"deleted collection {name!r}")


@cli.command("map")
def embedding_map(
    collection: Annotated[str, typer.Argument(help="collection to draw")],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("map.png"),
    question: Annotated[str | None, typer.Option(help="star the chunks retrieved for it")] = None,
    top_k: Annotated[int, typer.Option(help="chunks to star with --question")] = 5,
    max_points: Annotated[int | None, typer.Option(help="default: RAGQA_MAP_MAX_POINTS")] = None,
    index_dir: Annotated[Path | None, typer.Option(help="default: RAGQA_INDEX_DIR")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="end with a summary as one JSON line")] = False,
) -> None:
    """Draw a t-SNE map of a collection's chunk embeddings, coloured by document."""
    from app.core.store import CollectionCache, IndexStore, StoreError
    from app.viz.embedding_map import project, render_png

    settings = _settings(index_dir)
    store = IndexStore(settings.index_dir)
    try:
        index = store.load(collection)
    except (StoreError, ValueError) as exc:
        err.print(f"[red]map failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    highlighted = None
    if question:
        from app.core.embeddings import load_embedding_model
        from app.rag.retrieval import Retriever

        embedder = load_embedding_model(settings.embedding_model, settings.embedding_batch_size)
        hits = Retriever(CollectionCache(store), embedder).run(question, collection, top_k)
        highlighted = [p.id for p in hits]
    with err.status("projecting the embeddings with t-SNE"):
        projection = project(index, max_points or settings.map_max_points)
    out.write_bytes(render_png(projection, highlighted, question))
    summary = {
        "out": str(out), "collection": collection, "version": index.version,
        "points": len(projection.chunk_ids), "total_chunks": projection.total_chunks,
        "sampled": projection.sampled, "near_duplicates": int(projection.near_duplicate.sum()),
        "outliers": int(projection.outlier.sum()), "seconds": projection.seconds,
    }  # fmt: skip
    if as_json:
        print(json.dumps(summary))
    else:
        err.print(f"wrote {out}: {summary['points']} of {summary['total_chunks']} chunks in {projection.seconds} s")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
