"""`ragqa serve --workers 2`, slow tier: a real parent with two uvicorn workers on one port.

Both workers answer; a re-ingest and a delete made through one worker are seen by every worker;
/metrics sums over the workers whichever answers the scrape; and neither the workers nor the one
shared embedded LLM outlive the parent, however it is stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.core.store import IndexStore
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.conftest import RunningServer, child_pids, is_running, start_server, stop_server
from tests.reliability.conftest import dead_llm_url

pytestmark = pytest.mark.slow

EDITION = re.compile(r"Edition (\d+)")


def workers_of(server: RunningServer) -> set[int]:
    return {
        pid
        for pid in child_pids(server.process.pid)
        if b"multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes() and is_running(pid)
    }


def by_worker(send, want: set[int], timeout: float = 120, batch: int = 16) -> dict[int, httpx.Response]:
    """Concurrent requests, each on a fresh connection, until every worker in ``want`` has
    answered one: the last answer of each worker."""
    answers: dict[int, httpx.Response] = {}
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(batch) as pool:
        while time.monotonic() < deadline:
            for response in pool.map(lambda _: send(), range(batch)):
                answers[int(response.headers["x-ragqa-worker"])] = response
            if want <= set(answers):
                return answers
    raise AssertionError(f"only workers {sorted(answers)} answered, of {sorted(want)}")


def healthz(server: RunningServer):
    return lambda: httpx.get(f"{server.url}/healthz", timeout=30)


def write_docs(folder: Path, edition: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(4):
        (folder / f"town{i}.txt").write_text(f"Edition {edition}. Town {i} has {i + edition} bridges. " * 8)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, sample_index, embedder):
    """Two workers over the samples plus a collection `live` the tests rewrite; no LLM needed."""
    root = tmp_path_factory.mktemp("workers")
    index_dir = root / "indexes"
    shutil.copytree(sample_index, index_dir)
    job = IngestJob(IndexStore(index_dir), embedder, TextSplitter(300, 50))
    write_docs(root / "docs", 0)
    job.run(root / "docs", "live")
    server = start_server(
        index_dir, root / "serve.log", {"RAGQA_LLM_BASE_URL": dead_llm_url()}, ("--workers", "2"), timeout=300
    )
    deadline = time.monotonic() + 120
    while len(workers_of(server)) < 2:
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.5)
    by_worker(healthz(server), workers_of(server), timeout=300)  # both have started
    server.job, server.root = job, root  # type: ignore[attr-defined]
    yield server
    if server.process.poll() is None:
        stop_server(server)


def retrieve(server: RunningServer, collection: str):
    def send() -> httpx.Response:
        return httpx.post(
            f"{server.url}/v1/retrieve",
            json={"question": "How many bridges does town 1 have?", "collection": collection, "top_k": 1},
            timeout=60,
        )

    return send


def test_both_workers_answer(two_workers):
    pids = workers_of(two_workers)
    assert len(pids) == 2 and two_workers.process.pid not in pids
    answers = by_worker(retrieve(two_workers, "default"), pids)
    assert all(r.status_code == 200 and r.json()["passages"] for r in answers.values())


def test_a_reingest_is_seen_by_every_worker(two_workers):
    pids, send = workers_of(two_workers), retrieve(two_workers, "live")
    before = by_worker(send, pids)  # each worker has loaded edition 0
    assert {EDITION.search(r.json()["passages"][0]["text"])[1] for r in before.values()} == {"0"}
    write_docs(two_workers.root / "docs", 1)
    two_workers.job.run(two_workers.root / "docs", "live")
    after = by_worker(send, pids)
    assert {EDITION.search(r.json()["passages"][0]["text"])[1] for r in after.values()} == {"1"}


def test_a_delete_through_one_worker_is_seen_by_the_other(two_workers):
    pids = workers_of(two_workers)
    upload = httpx.post(
        f"{two_workers.url}/v1/collections/doomed/documents",
        files=[("files", ("a.txt", b"Town 1 has 3 bridges. " * 20, "text/plain"))],
        timeout=120,
    )
    assert upload.status_code in (200, 201), upload.text
    send = retrieve(two_workers, "doomed")
    assert all(r.status_code == 200 for r in by_worker(send, pids).values())  # loaded in both
    deleted = httpx.delete(f"{two_workers.url}/v1/collections/doomed", timeout=60)
    assert deleted.status_code in (200, 204), deleted.text
    deleter = int(deleted.headers["x-ragqa-worker"])
    after = by_worker(send, pids)
    assert {r.status_code for r in after.values()} == {404}, {p: r.text for p, r in after.items()}
    assert deleter in after and len(after) == 2


def counted(text: str, route: str) -> float:
    pattern = rf'ragqa_http_request_duration_seconds_count\{{method="POST",route="{re.escape(route)}",status="200"\}} (\S+)'
    match = re.search(pattern, text)
    return float(match[1]) if match else 0.0


def test_metrics_sum_over_the_workers(two_workers):
    pids = workers_of(two_workers)

    def scrape() -> httpx.Response:
        return httpx.get(f"{two_workers.url}/metrics", timeout=30)

    before = by_worker(scrape, pids)
    # Whichever worker answers a scrape, it reports the same sums.
    assert len({counted(r.text, "/v1/retrieve") for r in before.values()}) == 1
    start = counted(next(iter(before.values())).text, "/v1/retrieve")
    send, sent, seen = retrieve(two_workers, "default"), 0, set()
    with ThreadPoolExecutor(16) as pool:
        while seen != pids or sent < 32:  # until both workers have counted some
            for r in pool.map(lambda _: send(), range(16)):
                assert r.status_code == 200
                seen.add(int(r.headers["x-ragqa-worker"]))
                sent += 1
            assert sent < 16 * 40, f"only workers {seen} answered"
    after = by_worker(scrape, pids)
    for pid, r in after.items():
        assert counted(r.text, "/v1/retrieve") == start + sent, (pid, r.text)
        assert "ragqa_workers 2.0" in r.text
        assert re.search(r'ragqa_collection_chunks\{collection="default"\} [1-9]', r.text)


def test_a_killed_worker_is_replaced_and_marked_dead(two_workers):
    old = workers_of(two_workers)

    def scrape() -> httpx.Response:
        return httpx.get(f"{two_workers.url}/metrics", timeout=30)

    before = counted(scrape().text, "/v1/retrieve")
    victim = min(old)
    os.kill(victim, signal.SIGKILL)
    # uvicorn starts a new one; on a starved machine it may replace that one too before it answers
    deadline = time.monotonic() + 600
    while True:
        now = workers_of(two_workers)
        if len(now) == 2 and victim not in now:
            try:
                by_worker(healthz(two_workers), now, timeout=60)  # the new one has loaded and answers
                break
            except AssertionError:
                pass
        assert time.monotonic() < deadline, f"workers {now}, log:\n{two_workers.log.read_text()[-3000:]}"
        time.sleep(0.5)
    scraped = by_worker(scrape, now)
    for pid, response in scraped.items():
        assert "ragqa_workers 2.0" in response.text, (pid, [line for line in response.text.splitlines() if "workers" in line])
        # the dead worker's counts are kept: a counter never goes down
        assert counted(response.text, "/v1/retrieve") == before


def left_behind(parent: int, timeout: float = 30) -> list[int]:
    """Processes still running, after ``timeout``, that were started for the `ragqa serve` with pid
    ``parent`` (they carry it in their environment, wherever they were reparented)."""
    mark = f"RAGQA_SERVE_PARENT_PID={parent}".encode()
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if mark in environ.read_bytes().split(b"\0") and is_running(int(environ.parent.name)):
                    left.append(int(environ.parent.name))
            except OSError:
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def run_dir_of(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    [value] = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"RAGQA_SERVE_RUN_DIR=")]
    return Path(value.decode())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_nothing_outlives_the_parent(sig, sample_index, tmp_path):
    """One embedded LLM for both workers; after the parent's signal no LLM, no worker, no run folder."""
    server = start_server(sample_index, tmp_path / "serve.log", args=("--workers", "2"), timeout=300)
    try:
        deadline = time.monotonic() + 180
        while len(workers_of(server)) < 2 or httpx.get(f"{server.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.5)
        by_worker(healthz(server), workers_of(server), timeout=300)
        [llm] = server.llm_children()  # one, started by the parent
        pids = workers_of(server)
        for worker in pids:
            assert not [p for p in child_pids(worker) if is_running(p)], "a worker started a process of its own"
        ready = by_worker(lambda: httpx.get(f"{server.url}/readyz", timeout=30), pids)
        for response in ready.values():  # every worker reports the parent's supervisor
            assert response.json()["llm_process"]["state"] == "running"
            assert response.json()["llm_process"]["pid"] == llm
        run_dir = run_dir_of(min(pids))
        assert (run_dir / "metrics").is_dir()
        server.process.send_signal(sig)
        server.process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(is_running(p) for p in (llm, *pids)) or run_dir.exists():
            assert time.monotonic() < deadline, (
                f"left behind: {[p for p in (llm, *pids) if is_running(p)]}, run folder {run_dir.exists()}"
            )
            time.sleep(0.3)
        assert not left_behind(server.process.pid)  # nor a replaced worker, nor the resource tracker
    finally:
        if server.process.poll() is None:
            server.process.kill()


def test_a_worker_that_cannot_start_stops_the_serve_with_an_error(tmp_path):
    """A worker whose app cannot start (here: no such embedding model): uvicorn stops the
    others, and `ragqa serve` exits 3, as it does with one process; nothing is left behind."""
    import subprocess

    from app.llm.embedded import free_loopback_port
    from tests.conftest import RAGQA

    env = {
        **os.environ,
        "RAGQA_INDEX_DIR": str(tmp_path / "indexes"),
        "RAGQA_LLM_BASE_URL": dead_llm_url(),
        "RAGQA_EMBEDDING_MODEL": str(tmp_path / "no-such-model"),
    }
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [str(RAGQA), "serve", "--port", str(free_loopback_port()), "--workers", "2"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.wait(timeout=300) == 3, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert "a worker failed to start" in log.read_text()
    assert not left_behind(process.pid)
