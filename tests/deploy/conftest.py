"""The deploy tier: the real image, and the CPU compose stack run by podman-compose.

The engine is prepared by scripts/containers.sh (podman, deploy/containers.conf, the base image, the
image build). Where it cannot be prepared these tests skip with the reason; under CI=true they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.llm.embedded import free_loopback_port

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("RAGQA_IMAGE", "ragqa:latest")
PROJECT = "ragqa-deploy-test"
COMPOSE_FILES = ["-f", str(REPO / "docker-compose.yml"), "-f", str(REPO / "compose.cpu.yml")]
ENV = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "deploy" / "containers.conf"))}


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"deploy tier: {reason}", pytrace=False)
    pytest.skip(f"deploy tier: {reason}")


def sh(*args: str, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, env=ENV, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def podman_compose_bin() -> str | None:
    local = Path(sys.executable).parent / "podman-compose"
    return str(local) if local.exists() else shutil.which("podman-compose")


@pytest.fixture(scope="session")
def engine() -> str:
    """podman with the image built; prepared by scripts/containers.sh when missing."""
    ready = shutil.which("podman") and podman_compose_bin()
    if not ready or sh("podman", "image", "exists", IMAGE, check=False).returncode != 0:
        prep = subprocess.run(
            ["bash", str(REPO / "scripts" / "containers.sh"), "all"],
            capture_output=True,
            text=True,
            env={**ENV, "PYTHON": sys.executable},
            timeout=3600,
        )
        if prep.returncode != 0:
            unavailable(f"scripts/containers.sh failed ({prep.returncode}):\n{prep.stderr[-3000:]}")
    compose = podman_compose_bin()
    if not compose:
        unavailable("podman-compose is not installed")
    return compose


def http(method: str, url: str, body: dict | None = None, timeout: float = 120) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_for(predicate, timeout: float, what: str, step: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ValueError) as exc:  # connection refused/reset while starting
            last = exc
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def world_readable_dir(prefix: str) -> Path:
    """A host folder uid 10001 in a container can read (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@dataclass
class Stack:
    compose: str
    port: int
    docs: Path
    up_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return sh(self.compose, "-p", PROJECT, *COMPOSE_FILES, *args, **kw)

    def env(self) -> dict:
        return {"RAGQA_PORT": str(self.port), "RAGQA_DOCS": str(self.docs)}


def leftovers() -> list[str]:
    result = sh(
        "podman",
        "ps",
        "-a",
        "--filter",
        f"label=io.podman.compose.project={PROJECT}",
        "--format",
        "{{.Names}}",
        check=False,
    )
    return result.stdout.split()


@pytest.fixture(scope="session")
def stack(engine) -> Iterator[Stack]:
    docs = world_readable_dir("ragqa-deploy-docs-")
    for src in (REPO / "samples" / "ragqa-docs").iterdir():
        shutil.copy(src, docs / src.name)
        (docs / src.name).chmod(0o644)
    port = free_loopback_port()
    env = {"RAGQA_PORT": str(port), "RAGQA_DOCS": str(docs)}
    ENV.update(env)
    compose = [engine, "-p", PROJECT, *COMPOSE_FILES]
    sh(*compose, "down", "-v", check=False)  # a run killed midway
    started = time.monotonic()
    sh(*compose, "up", "-d", timeout=600)
    s = Stack(engine, port, docs, 0.0)
    wait_for(lambda: http("GET", s.url + "/readyz", timeout=5)[0] == 200, 300, "/readyz 200")
    s.up_seconds = time.monotonic() - started
    print(f"\nstack up and ready in {s.up_seconds:.1f} s", file=sys.stderr)
    try:
        yield s
    finally:
        sh(*compose, "down", "-v", "-t", "10", check=False, timeout=120)
        for name in leftovers():
            sh("podman", "rm", "-f", name, check=False)
        sh("podman", "volume", "rm", "-f", f"{PROJECT}_indexes", check=False)
        shutil.rmtree(docs, ignore_errors=True)
