"""`ragqa serve --workers N`, fast tier: the setting, the CLI's bounds, and the pieces the
workers share (the metrics files, the LLM's status file, the worker header). The slow tier
(tests/reliability/test_workers.py) starts real workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from app.api import workers
from app.core.config import Settings, get_settings
from app.llm import embedded


def test_workers_setting(monkeypatch):
    monkeypatch.delenv("RAGQA_WORKERS", raising=False)
    assert Settings(_env_file=None).workers == 1
    monkeypatch.setenv("RAGQA_WORKERS", "3")
    assert Settings(_env_file=None).workers == 3
    for bad in ("0", "-2"):
        monkeypatch.setenv("RAGQA_WORKERS", bad)
        with pytest.raises(ValidationError, match="workers"):
            Settings(_env_file=None)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_serve_refuses_workers_below_one(value, monkeypatch):
    from app.cli import cli

    monkeypatch.delenv("RAGQA_WORKERS", raising=False)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve", "--workers", value])
    assert result.exit_code == 2, result.output
    assert "--workers" in result.output


def test_serve_refuses_ragqa_workers_below_one(monkeypatch):
    from app.cli import cli

    monkeypatch.setenv("RAGQA_WORKERS", "0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "workers" in result.output and "greater than or equal to 1" in result.output


def test_worker_environment_is_set_for_the_workers_and_undone(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("RAGQA_LLM_BASE_URL", "http://given:1/v1")
    with workers.worker_environment("warning") as run_dir:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(run_dir / "metrics")
        assert (run_dir / "metrics").is_dir()
        assert os.environ[workers.ENV_PARENT_PID] == str(os.getpid())
        assert os.environ[embedded.STATUS_FILE_ENV] == str(workers.status_file(run_dir))
        os.environ["RAGQA_LLM_BASE_URL"] = "http://127.0.0.1:2/v1"  # what serve sets for the embedded LLM
    assert not run_dir.exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ and workers.ENV_RUN_DIR not in os.environ
    assert os.environ["RAGQA_LLM_BASE_URL"] == "http://given:1/v1"


def test_run_dirs_of_dead_parents_are_removed():
    import tempfile

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tempfile.mkdtemp(prefix=f"{workers.RUN_DIR_PREFIX}{int(dead.stdout)}-")
    live = tempfile.mkdtemp(prefix=f"{workers.RUN_DIR_PREFIX}{os.getpid()}-")
    try:
        workers.remove_stale_run_dirs()
        assert not os.path.exists(stale) and os.path.isdir(live)
    finally:
        os.rmdir(live)


def test_worker_header_names_the_process():
    app = FastAPI()

    @app.get("/x")
    def x() -> dict:
        return {}

    app.add_middleware(workers.WorkerHeaderMiddleware)
    response = TestClient(app).get("/x")
    assert response.headers["x-ragqa-worker"] == str(os.getpid())


def test_workers_read_the_status_the_parent_publishes(tmp_path, monkeypatch):
    status_file = tmp_path / "llm-status.json"
    monkeypatch.setattr(embedded, "_supervised", None)
    monkeypatch.setenv(embedded.STATUS_FILE_ENV, str(status_file))
    assert embedded.supervisor_status() is None  # nothing published yet
    server = embedded.EmbeddedLLMServer(
        model_path=tmp_path / "m.gguf", alias="a", n_ctx=512, port=1, status_file=status_file
    )
    server.state = "restarting"
    server.last_exit = {"returncode": -9, "pid": 4, "at": 0.0}
    server.publish_status()
    assert embedded.supervisor_status() == server.status() == json.loads(status_file.read_text())
    assert embedded.supervisor_status()["state"] == "restarting"
    server._remove_log()


WORKERS_THEN_SCRAPE = """
import os, sys
from app.api import metrics
for n in (1, 2, 4):  # three workers, each forked, counting and exiting
    pid = os.fork()
    if pid == 0:
        metrics.WORKERS.set(1)  # what a worker's import of app.api.metrics does
        metrics.HTTP_LATENCY.labels("/v1/ask", "POST", "200").observe(0.1)
        metrics.ANSWERS.labels("generated").inc(n)
        os._exit(0)
    os.waitpid(pid, 0)
files = len([f for f in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]) if f.startswith("gauge_livesum_")])
sys.stdout.write(f"livesum files before: {files}\\n")
sys.stdout.write(metrics.exposition({"default": 7}).decode())
"""


def test_metrics_sum_over_worker_processes_and_dead_workers_are_marked(tmp_path):
    """Three forked processes write their values into PROMETHEUS_MULTIPROC_DIR, as workers do,
    and exit; their parent scrapes: counters are summed, dead workers leave ragqa_workers."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", WORKERS_THEN_SCRAPE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "livesum files before: 4" in text
    assert 'ragqa_answers_total{source="generated"} 7.0' in text
    assert 'ragqa_http_request_duration_seconds_count{method="POST",route="/v1/ask",status="200"} 3.0' in text
    assert 'ragqa_collection_chunks{collection="default"} 7.0' in text
    # The three writers have exited: marked dead, only the scraping process itself counts.
    assert "ragqa_workers 1.0" in text
    assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 1
