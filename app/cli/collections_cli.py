"""`ragqa collections list|delete`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.cli.common import IndexDirOption, cli, err, settings_for

collections_cli = typer.Typer(help="List or delete collections.", no_args_is_help=True)
cli.add_typer(collections_cli, name="collections")


@collections_cli.command("list")
def collections_list(
    index_dir: IndexDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The collections under the index folder, with their size and live version."""
    from app.core.store import IndexStore, StoreError

    store = IndexStore(settings_for(index_dir).index_dir)
    rows: list[dict[str, object]] = []
    for name in store.list_collections():
        try:
            manifest = store.read_manifest(name)
        except StoreError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append(
            {
                "name": name,
                "documents": len(manifest.documents),
                "chunks": manifest.chunk_count,
                "embedding_model": manifest.embedding.model,
                "version": manifest.version,
                "created_at": manifest.created_at,
            }
        )
    if as_json:
        print(json.dumps({"collections": rows}, ensure_ascii=False))
        return
    table = Table(title=f"collections in {store.root}")
    for column in ("name", "documents", "chunks", "embedding_model", "version", "created_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["name"]),
            *(
                str(row.get(c, row.get("error", "")))
                for c in ("documents", "chunks", "embedding_model", "version", "created_at")
            ),
        )
    Console().print(table)


@collections_cli.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="collection to delete")],
    index_dir: IndexDirOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a collection with all its versions (waits for a running ingest of it to finish)."""
    from app.core.store import IndexStore, StoreError

    store = IndexStore(settings_for(index_dir).index_dir)
    try:
        store.read_manifest(name)
        if not yes:
            typer.confirm(f"delete collection {name!r} in {store.root}?", abort=True)
        store.delete(name)
    except StoreError as exc:
        err.print(f"[red]cannot delete:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    err.print(f"deleted collection {name!r}")
