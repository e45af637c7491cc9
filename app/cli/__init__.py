"""The ``ragqa`` command, one module per command; the objects they run with come from app.wiring."""

from __future__ import annotations

from app.cli import collections_cli, embedding_map, evaluate, ingest, reports, serve  # noqa: F401
from app.cli.common import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli()
