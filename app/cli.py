"""The ``ragqa`` command: the composition root that wires the ingest job and the service together."""

from __future__ import annotations

import json
import logging
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
) -> None:
    """Sync a folder into a collection: add, update and delete only what changed."""
    from app.core.embeddings import load_embedding_model
    from app.core.store import IndexStore, StoreError
    from ingest.run import IngestError, IngestJob
    from ingest.splitting import TextSplitter

    settings = _settings(index_dir)
    with err.status("loading the embedding model"):
        embedder = load_embedding_model(settings.embedding_model, settings.embedding_batch_size)
    job = IngestJob(
        IndexStore(settings.index_dir),
        embedder,
        TextSplitter(settings.chunk_size, settings.chunk_overlap),
    )
    progress = Progress(
        TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    task = progress.add_task("embed", total=None)
    try:
        with progress:
            summary = job.run(
                path,
                collection,
                prune=prune,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except (IngestError, StoreError, ValueError) as exc:
        err.print(f"[red]ingest failed:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc

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
    from app.llm.embedded import EmbeddedLLMError, EmbeddedLLMServer

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    embedded: EmbeddedLLMServer | None = None
    # Until uvicorn takes over signal handling, make SIGTERM unwind so the child is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if settings.llm_base_url is None:
            embedded = EmbeddedLLMServer(
                model_path=settings.embedded_llm_gguf,
                alias=settings.llm_model,
                n_ctx=settings.llm_context_window,
                start_timeout_s=settings.embedded_llm_start_timeout_s,
            )
            with err.status("starting the embedded LLM server"):
                embedded.start()
            err.print(f"embedded LLM ({embedded.model_path.name}) ready at {embedded.base_url}")
            settings = settings.model_copy(update={"llm_base_url": embedded.base_url})
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
    except EmbeddedLLMError as exc:
        err.print(f"[red]cannot start the embedded LLM:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        if embedded is not None:
            embedded.stop()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
