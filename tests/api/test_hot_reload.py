"""A running `ragqa serve` picks up new versions without a restart and fails no query meanwhile."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.core.store import IndexStore
from app.llm.embedded import free_loopback_port
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.slow

QUERIES = 200
EDITION = re.compile(r"Edition \d+")


def write_docs(folder, generation: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(8):
        (folder / f"city{i}.txt").write_text(
            f"Edition {generation}. City {i} has a harbour, a museum and {i + generation} bridges. " * 8
        )


def test_queries_succeed_while_the_collection_is_rewritten(tmp_path, embedder):
    folder, index_dir = tmp_path / "docs", tmp_path / "indexes"
    write_docs(folder, 0)
    job = IngestJob(IndexStore(index_dir), embedder, TextSplitter(300, 50))
    job.run(folder, "live")
    # Retrieval needs no LLM: point the service at a port nothing listens on.
    server = start_server(
        index_dir,
        tmp_path / "serve.log",
        {"RAGQA_LLM_BASE_URL": f"http://127.0.0.1:{free_loopback_port()}/v1"},
    )
    try:
        url = f"{server.url}/v1/retrieve"
        seen_versions: set[str] = set()
        errors: list[str] = []
        done = threading.Event()

        def query(i: int) -> None:
            try:
                r = httpx.post(
                    url,
                    json={
                        "question": f"How many bridges does city {i % 8} have?",
                        "collection": "live",
                        "top_k": 3,
                    },
                    timeout=60,
                )
                if r.status_code != 200 or not r.json()["passages"]:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                else:
                    seen_versions.update(EDITION.findall(r.json()["passages"][0]["text"]))
            except httpx.HTTPError as exc:
                errors.append(repr(exc))

        def rewrite() -> None:
            generation = 0
            while not done.is_set():
                generation += 1
                write_docs(folder, generation)
                job.run(folder, "live")
                (folder / "extra.txt").write_text(f"Extra note {generation} about ferries.")
                job.run(folder, "live")
                (folder / "extra.txt").unlink()
                job.run(folder, "live")

        writer = threading.Thread(target=rewrite)
        writer.start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(query, range(QUERIES)))
        done.set()
        writer.join()

        assert errors == []
        assert len(seen_versions) >= 2  # answers came from several versions: it reloaded live
        # After the last write, the server answers from it: no restart needed.
        final = IndexStore(index_dir).load("live")
        (edition,) = {e for c in final.chunks.values() for e in EDITION.findall(c.text)}
        r = httpx.post(url, json={"question": "bridges", "collection": "live", "top_k": 3}, timeout=60)
        found = EDITION.findall(r.json()["passages"][0]["text"])
        assert found and set(found) == {edition}
    finally:
        stop_server(server)
