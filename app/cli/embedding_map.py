"""`ragqa map`: a t-SNE map of a collection's chunk embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import IndexDirOption, cli, err, settings_for


@cli.command("map")
def embedding_map(
    collection: Annotated[str, typer.Argument(help="collection to draw")],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("map.png"),
    question: Annotated[str | None, typer.Option(help="star the chunks retrieved for it")] = None,
    top_k: Annotated[int, typer.Option(help="chunks to star with --question")] = 5,
    max_points: Annotated[int | None, typer.Option(help="default: RAGQA_MAP_MAX_POINTS")] = None,
    index_dir: IndexDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="end with a summary as one JSON line")] = False,
) -> None:
    """Draw a t-SNE map of a collection's chunk embeddings, coloured by document."""
    from app.core.store import CollectionCache, IndexStore, StoreError
    from app.viz.embedding_map import project, render_png

    settings = settings_for(index_dir)
    store = IndexStore(settings.index_dir)
    try:
        index = store.load(collection)
    except (StoreError, ValueError) as exc:
        err.print(f"[red]map failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    highlighted = None
    if question:
        from app.wiring import build_embedder, build_retriever

        # Retrieved as /v1/collections/{name}/map.png retrieves: the service's retrieval settings.
        retriever = build_retriever(settings, CollectionCache(store), build_embedder(settings))
        hits = retriever.run(question, collection, top_k)
        highlighted = [p.id for p in hits]
    with err.status("projecting the embeddings with t-SNE"):
        projection = project(index, max_points or settings.map_max_points)
    out.write_bytes(render_png(projection, highlighted, question))
    summary = {
        "out": str(out),
        "collection": collection,
        "version": index.version,
        "points": len(projection.chunk_ids),
        "total_chunks": projection.total_chunks,
        "sampled": projection.sampled,
        "near_duplicates": int(projection.near_duplicate.sum()),
        "outliers": int(projection.outlier.sum()),
        "seconds": projection.seconds,
    }
    if as_json:
        print(json.dumps(summary))
    else:
        err.print(
            f"wrote {out}: {summary['points']} of {summary['total_chunks']} chunks in {projection.seconds} s"
        )
