"""Failure 5: a dead embedded LLM child is reaped and restarted on the same port, with backoff;
/readyz says what happened and /healthz turns 503 only when the restarts keep failing.
The child here is a tiny stand-in HTTP server; tests/reliability/test_live.py kills the real one."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

import app.llm.embedded as embedded
from tests.conftest import is_running

FAKE_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"object": "list", "data": [{"id": "fake-llm"}]}'
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


class FakeEmbeddedServer(embedded.EmbeddedLLMServer):
    broken = False  # set: every later start fails at once

    def command(self) -> list[str]:
        if self.broken:
            return [sys.executable, "-c", "raise SystemExit(3)"]
        return [sys.executable, "-c", FAKE_SERVER, str(self.port)]


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "RESTART_BACKOFF_S", (0.2, 0.4))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"")
    server = FakeEmbeddedServer(model_path=model, alias="fake-llm", n_ctx=512, start_timeout_s=20)
    server.start()
    server.supervise(poll_s=0.1)
    yield server
    server.stop()


def wait_for(predicate, timeout: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_killed_child_is_reaped_and_restarted_on_the_same_port(server):
    first = server.process.pid
    port = server.port
    os.kill(first, signal.SIGKILL)
    recovery_s = wait_for(lambda: server.status()["restarts"] == 1 and server.status()["state"] == "running")
    assert recovery_s < 10
    assert server.process.pid != first and server.port == port
    assert not is_running(first), "the dead child must be reaped, not left a zombie"
    assert not Path(f"/proc/{first}").exists()
    assert httpx.get(f"{server.base_url}/models", timeout=5).status_code == 200
    status = server.status()
    assert status["last_exit"]["returncode"] == -signal.SIGKILL and status["last_exit"]["pid"] == first
    assert embedded.supervisor_status() == status


def test_readyz_reports_the_restart_and_healthz_the_give_up(server, make_client, monkeypatch):
    client = make_client(llm_base_url=server.base_url)
    os.kill(server.process.pid, signal.SIGKILL)
    wait_for(lambda: server.status()["restarts"] == 1 and server.status()["state"] == "running")
    ready = client.get("/readyz").json()
    assert ready["llm_process"]["restarts"] == 1
    assert ready["llm_process"]["last_exit"]["returncode"] == -signal.SIGKILL
    assert client.get("/healthz").status_code == 200

    monkeypatch.setattr(embedded, "RESTART_FAILURES_BEFORE_FAILED", 2)
    server.broken = True
    os.kill(server.process.pid, signal.SIGKILL)
    wait_for(lambda: server.status()["state"] in ("restarting", "failed"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert any("embedded LLM is" in p for p in response.json()["problems"])
    wait_for(lambda: server.status()["state"] == "failed")
    health = client.get("/healthz")
    assert health.status_code == 503 and "restarted" in health.json()["detail"]


def test_stopping_ends_supervision_and_removes_the_log(server):
    log_path = Path(server._log.name)
    assert log_path.exists()
    child = server.process.pid
    server.stop()
    assert not is_running(child)
    assert not log_path.exists(), "each `ragqa serve` used to leave a ragqa-llm-*.log behind"
    assert embedded.supervisor_status() is None or embedded.supervisor_status()["state"] == "stopped"
