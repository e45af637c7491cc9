"""The ``ragqa`` Typer app and what its commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.core.config import Settings, get_settings

cli = typer.Typer(help="ragqa: answers questions from your own documents.", no_args_is_help=True)
err = Console(stderr=True)

IndexDirOption = Annotated[Path | None, typer.Option(help="default: RAGQA_INDEX_DIR")]


def settings_for(index_dir: Path | None) -> Settings:
    """RAGQA_ settings, with ``--index-dir`` if given."""
    settings = get_settings()
    return settings.model_copy(update={"index_dir": index_dir}) if index_dir else settings
