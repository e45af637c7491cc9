"""`ragqa ingest`: sync a folder into a collection."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.common import IndexDirOption, cli, err, settings_for


@cli.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="folder of documents to ingest")],
    collection: Annotated[str, typer.Option(help="collection to write")] = "default",
    index_dir: IndexDirOption = None,
    prune: Annotated[bool, typer.Option(help="remove documents gone from the folder")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="end with the summary as one JSON line")] = False,
    outliers: Annotated[bool, typer.Option(help="also report chunks far from every other chunk")] = False,
    allow_empty: Annotated[
        bool, typer.Option(help="sync a folder with no document: removes every document of the collection")
    ] = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="load, split and embed the changed documents on Ray (the `ray` extra): a local cluster"
            " started for this run unless --ray-address",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="the Ray cluster to run on: its head's host:port, or auto; implies --ray"),
    ] = None,
    ray_workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="embedding actors on Ray, one CPU each (default: one per CPU of the cluster)"
        ),
    ] = None,
) -> None:
    """Sync a folder into a collection: add, update and delete only what changed.

    A folder with no document in it changes nothing (exit 0) unless --allow-empty."""
    from app.core.store import StoreError
    from app.wiring import build_embedder, build_ingest_job, build_store
    from ingest.run import IngestError, IngestProgress

    settings = settings_for(index_dir)
    use_ray = ray or ray_address is not None
    if ray_workers is not None and not use_ray:
        err.print("[red]--ray-workers needs --ray[/red]")
        raise typer.Exit(2)
    # Loaded when the first chunk needs embedding: re-ingesting an unchanged folder takes a second.
    embedder = build_embedder(settings, lazy=True)
    progress = Progress(
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )
    files_task = progress.add_task("files", total=None)
    chunks_task = progress.add_task("chunks", total=None)

    def on_progress(p: IngestProgress) -> None:
        progress.update(files_task, completed=p.files_done, total=p.files_total)
        progress.update(chunks_task, completed=p.chunks_done)

    try:
        with contextlib.ExitStack() as stack:
            prepare = None
            if use_ray:
                from ingest.ray_runner import ray_preparer  # Ray is imported only with --ray

                prepare = stack.enter_context(ray_preparer(ray_address, ray_workers))
            job = build_ingest_job(settings, build_store(settings), embedder, prepare=prepare)
            with progress:
                summary = job.run(
                    path,
                    collection,
                    prune=prune,
                    outliers=outliers,
                    on_progress=on_progress,
                    allow_empty=allow_empty,
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
        err.print(
            f"[yellow]nothing ingested:[/yellow] {summary.reason}; --allow-empty empties it", soft_wrap=True
        )

    if summary.reembedded:
        err.print(f"[yellow]re-embedded:[/yellow] {summary.reembedded}", soft_wrap=True)

    table = Table(title=f"ingested {path} into {collection!r} ({summary.embedding_model or '?'})")
    for column in ("added", "updated", "unchanged", "deleted", "skipped", "chunks", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(x) for x in (summary.added, summary.updated, summary.unchanged, summary.deleted)),
        str(len(summary.skipped)),
        str(summary.chunks),
        f"{summary.seconds:.1f}",
    )
    out = Console(stderr=as_json)  # keep stdout's last line for the JSON summary
    out.print(table)
    for skipped in summary.skipped:
        out.print(f"  skipped {skipped['path']}: {skipped['reason']}")
    if summary.near_duplicate_pairs:
        out.print(
            f"  {summary.near_duplicate_pairs} near-duplicate chunk pairs across documents"
            f" (cosine >= {job.near_duplicate_cosine}):"
        )
        for pair in summary.near_duplicates[:10]:
            a, b = pair["a"], pair["b"]
            out.print(f"    {pair['score']:.3f}  {a['doc']} @{a['start']}  ~  {b['doc']} @{b['start']}")
    for outlier in summary.outliers or []:
        out.print(
            f"  outlier {outlier['doc']} @{outlier['start']}: nearest chunk cosine {outlier['nearest_cosine']:.3f}"
        )
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
