"""`ragqa serve --workers N`: what the parent sets up for its workers, and the app each runs.

uvicorn's own multi-process mode runs the workers (one listening socket, a dead worker
replaced). The parent starts the embedded LLM once, before them, and passes its URL on in
RAGQA_LLM_BASE_URL; the workers inherit the parent's environment (they are spawned, not
forked). The parent also makes a temporary run folder for the workers: PROMETHEUS_MULTIPROC_DIR
(so /metrics sums over every worker) and the embedded LLM's status file (so every worker's
/readyz and /healthz report the supervisor's state). The folder goes when the parent exits; if
the parent is killed outright, its workers are signalled (PR_SET_PDEATHSIG) and remove it as
they exit; a folder still left (the parent was killed while its workers were starting) is
removed by the next `ragqa serve --workers`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# The import string uvicorn starts each worker from.
WORKER_APP = "app.api.workers:create_worker_app"
ENV_RUN_DIR = "RAGQA_SERVE_RUN_DIR"
RUN_DIR_PREFIX = "ragqa-serve-"  # then the parent's pid
ENV_PARENT_PID = "RAGQA_SERVE_PARENT_PID"
ENV_LOG_LEVEL = "RAGQA_SERVE_LOG_LEVEL"
ENV_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# uvicorn pings each worker and replaces one that does not answer in time (default 5 s). A
# worker importing torch on a loaded 2-core machine can hold its interpreter that long, and was
# then killed and restarted over and over, never getting to serve: 60 s.
WORKER_HEALTHCHECK_TIMEOUT_S = 60
# Every reply of a worker names it (its pid): which worker answered, for logs and tests.
WORKER_HEADER = b"x-ragqa-worker"


@contextmanager
def worker_environment(log_level: str) -> Iterator[Path]:
    """In the parent, before uvicorn starts the workers: the run folder and the environment
    the workers inherit; both undone on exit (RAGQA_LLM_BASE_URL too, which the caller sets
    once the embedded LLM is up)."""
    from app.llm.embedded import STATUS_FILE_ENV

    remove_stale_run_dirs()
    run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))
    (run_dir / "metrics").mkdir()
    updates = {
        ENV_RUN_DIR: str(run_dir),
        ENV_PARENT_PID: str(os.getpid()),
        ENV_LOG_LEVEL: log_level,
        ENV_METRICS_DIR: str(run_dir / "metrics"),
        STATUS_FILE_ENV: str(status_file(run_dir)),
    }
    saved = {name: os.environ.get(name) for name in [*updates, "RAGQA_LLM_BASE_URL"]}
    os.environ.update(updates)
    try:
        yield run_dir
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(run_dir, ignore_errors=True)


def remove_stale_run_dirs() -> None:
    """The run folders of parents that are gone: a parent killed while its workers were still
    starting leaves its folder behind (no worker had got as far as cleaning up)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*-*"):
        match = re.match(rf"{RUN_DIR_PREFIX}(\d+)-", folder.name)
        if match and folder.is_dir() and not _pid_alive(int(match[1])):
            shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def run_workers(workers: int, **options: Any) -> bool:
    """uvicorn.run(WORKER_APP, factory=True, workers=N) as uvicorn itself runs it, keeping hold
    of its supervisor: True when a worker failed to start (uvicorn then stops them all, and
    `ragqa serve` exits non-zero, as uvicorn.run does with one process)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        WORKER_APP, factory=True, workers=workers, timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S, **options
    )
    sock = config.bind_socket()  # exits 1, with uvicorn's message, when the port is taken
    try:
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
    finally:
        sock.close()
    return any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)


def status_file(run_dir: Path) -> Path:
    return run_dir / "llm-status.json"


class WorkerHeaderMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app
        self.header = (WORKER_HEADER, str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _parent_gone() -> bool:
    parent = int(os.environ.get(ENV_PARENT_PID) or 0)
    return bool(parent) and os.getppid() != parent


def create_worker_app() -> FastAPI:
    """One worker's app (uvicorn calls this in each worker process)."""
    from app.api.logs import configure_logging
    from app.api.main import create_app
    from app.core.config import get_settings
    from app.llm.embedded import die_with_parent

    # SIGTERM (uvicorn's graceful shutdown) when the parent dies, even by SIGKILL.
    die_with_parent(signal.SIGTERM)
    if _parent_gone():  # it died while this worker was starting, before the line above
        raise SystemExit("ragqa serve: the parent process is gone")
    settings = get_settings()
    configure_logging(os.environ.get(ENV_LOG_LEVEL, "info"), settings.log_format)
    app = create_app(settings)
    app.add_middleware(WorkerHeaderMiddleware)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with inner(app) as state:
            yield state
        metrics_dir = os.environ.get(ENV_METRICS_DIR)
        if metrics_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), metrics_dir)
        run_dir = os.environ.get(ENV_RUN_DIR)
        if run_dir and _parent_gone():  # the parent cannot clean up any more
            shutil.rmtree(run_dir, ignore_errors=True)

    app.router.lifespan_context = lifespan
    return app
