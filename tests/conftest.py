"""Shared fixtures: the real embedding model, a SQuAD collection on disk, a running `ragqa serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.core.config import DEFAULT_EMBEDDING_MODEL
from app.core.store import IndexStore
from app.llm.embedded import free_loopback_port

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = Path(os.environ.get("RAGQA_EVAL_DIR", REPO.parent / "shared" / "eval"))
SQUAD11 = EVAL_DIR / "squad-v1.1-dev"
RAGQA = Path(sys.executable).with_name("ragqa")


def read_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def require_eval_data() -> None:
    """The SQuAD data lives in ../shared; CI always has it, so there its absence is a failure."""
    if SQUAD11.is_dir():
        return
    message = f"evaluation data not found at {SQUAD11} (set RAGQA_EVAL_DIR)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def embedder():
    from app.core.embeddings import load_embedding_model

    return load_embedding_model(DEFAULT_EMBEDDING_MODEL)


@pytest.fixture(scope="session")
def squad_index(tmp_path_factory, embedder) -> Path:
    """squad-v1.1-dev's 40 documents ingested once per session (about a minute and a half)."""
    require_eval_data()
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter

    index_dir = tmp_path_factory.mktemp("indexes")
    summary = IngestJob(IndexStore(index_dir), embedder, TextSplitter(1000, 150)).run(
        SQUAD11 / "docs", "squad"
    )
    assert summary.added == 40 and not summary.skipped
    (index_dir / "ingest-summary.json").write_text(json.dumps(summary.to_dict()))
    return index_dir


def child_pids(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def is_running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class RunningServer:
    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process, self.url, self.log = process, url, log

    def llm_children(self) -> list[int]:
        return [
            pid
            for pid in child_pids(self.process.pid)
            if b"llama_cpp.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]


def start_server(
    index_dir: Path,
    log: Path,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 120,
) -> RunningServer:
    port = free_loopback_port()
    # The embedded LLM unless extra_env names a server (RAGQA_LLM_BASE_URL).
    env = {k: v for k, v in os.environ.items() if k != "RAGQA_LLM_BASE_URL"}
    # A generous answer timeout: a 2-core CI machine under load decodes slowly.
    env.update({"RAGQA_INDEX_DIR": str(index_dir), "RAGQA_LLM_TIMEOUT_S": "600", **(extra_env or {})})
    process = subprocess.Popen(
        [str(RAGQA), "serve", "--port", str(port), "--log-level", "warning", *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ragqa serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return RunningServer(process, url, log)
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"ragqa serve did not come up:\n{log.read_text()}")


def stop_server(server: RunningServer, sig: int = signal.SIGTERM) -> int:
    server.process.send_signal(sig)
    return server.process.wait(timeout=30)


@pytest.fixture(scope="session")
def squad_server(squad_index, tmp_path_factory):
    """`ragqa serve` over the SQuAD collection, with its embedded LLM, as a user runs it."""
    server = start_server(squad_index, tmp_path_factory.mktemp("logs") / "serve.log")
    yield server
    if server.process.poll() is None:
        stop_server(server)


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, embedder) -> Path:
    """The README's sample collection, as `default`."""
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter

    index_dir = tmp_path_factory.mktemp("sample-indexes")
    IngestJob(IndexStore(index_dir), embedder, TextSplitter(1000, 150)).run(
        REPO / "samples" / "ragqa-docs", "default"
    )
    return index_dir
