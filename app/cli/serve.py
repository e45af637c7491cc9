"""`ragqa serve`: the API, with the embedded LLM unless RAGQA_LLM_BASE_URL names one.

With ``--workers N`` (RAGQA_WORKERS) above 1, uvicorn runs N worker processes on the one
port; this process starts the embedded LLM once for all of them (app/api/workers.py).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from app.cli.common import cli, err
from app.core.config import get_settings


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="worker processes on the one port; default: RAGQA_WORKERS (1)"),
    ] = None,
) -> None:
    """Start the API. Without RAGQA_LLM_BASE_URL, start the embedded LLM server first."""
    import uvicorn

    from app.api.logs import configure_logging
    from app.api.main import create_app
    from app.api.workers import run_workers, status_file, worker_environment
    from app.llm.embedded import EmbeddedLLMError
    from app.wiring import running_llm

    try:
        settings = get_settings()
    except ValidationError as exc:
        err.print(f"[red]invalid settings:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    workers = workers or settings.workers
    configure_logging(log_level, settings.log_format)
    # A read-only replica (RAGQA_READ_ONLY) is meant to run over an unwritable folder.
    unwritable = settings.index_dir.exists() and not os.access(settings.index_dir, os.W_OK | os.X_OK)
    if unwritable and not settings.read_only:
        err.print(
            f"[yellow]warning:[/yellow] the index folder {settings.index_dir} is not writable by uid {os.getuid()}:"
            " uploads and ingests will fail and /readyz answers 503 (chown it, or use a named volume)",
            soft_wrap=True,
        )
    embedded = settings.llm_base_url is None
    # Until uvicorn takes over signal handling, make SIGTERM unwind so the child is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # log_config=None: uvicorn keeps the JSON logging configured above.
    # A bounded graceful shutdown: an answer in flight must not hold SIGTERM up for minutes.
    options = dict(
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=int(settings.keep_alive_s),
    )
    try:
        if embedded:
            err.print("starting the embedded LLM server")
        if workers == 1:
            with running_llm(settings) as ready:  # the same embedded server `ragqa eval` starts
                if embedded:
                    err.print(f"embedded LLM ready at {ready.llm_base_url}")
                uvicorn.run(create_app(ready), **options)  # type: ignore[arg-type]
            return
        # The workers inherit the environment: the run folder, and the embedded LLM's URL.
        with worker_environment(log_level) as run_dir:
            with running_llm(settings, status_file=status_file(run_dir)) as ready:
                if embedded:
                    err.print(f"embedded LLM ready at {ready.llm_base_url}, shared by {workers} workers")
                    os.environ["RAGQA_LLM_BASE_URL"] = str(ready.llm_base_url)
                if run_workers(workers, **options):
                    err.print("[red]a worker failed to start[/red] (its error is logged above)")
                    raise typer.Exit(3)
    except EmbeddedLLMError as exc:
        err.print(f"[red]cannot start the embedded LLM:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
