"""`ragqa ingest --ray`: the Ray path writes what the local path writes, and fails cleanly.

The slow tests start one local Ray cluster for the module (2 CPUs, a small object store) and
ingest with the real embedding model; the fast ones need Ray installed but no cluster or model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from app.core.store import CURRENT_FILE, IndexStore
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.conftest import REPO
from tests.fakes import ingest_samples
from tests.ingest.docgen import make_pdf

SAMPLES = REPO / "samples" / "ragqa-docs"


def ragqa(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def collection_state(index_dir, name: str) -> tuple[str, list[str]]:
    """The live version and every entry of the collection's folder."""
    cdir = index_dir / name
    return (cdir / CURRENT_FILE).read_text(), sorted(p.name for p in cdir.iterdir())


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- fast: no cluster, no model ----------------------------------------------------------------


def test_an_unreachable_ray_address_fails_fast_and_leaves_the_collection_live(tmp_path):
    ingest_samples(tmp_path, "docs")
    before = collection_state(tmp_path, "docs")
    started = time.monotonic()
    result = ragqa(
        "ingest",
        str(SAMPLES),
        "--collection",
        "docs",
        "--index-dir",
        str(tmp_path),
        "--ray-address",
        "127.0.0.1:1",
    )
    assert result.returncode == 2
    assert time.monotonic() - started < 30
    assert (
        last_line(result.stderr)
        == "ingest failed: cannot reach the Ray cluster at 127.0.0.1:1: Connection refused"
    )
    assert collection_state(tmp_path, "docs") == before


def test_ray_not_installed_is_a_clear_error(monkeypatch):
    from ingest.ray_runner import RayIngestError, ray_preparer

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(
        RayIngestError, match=r"--ray needs Ray Data, which is not installed .*pip install -e '\.\[ray\]'"
    ):
        with ray_preparer():
            pass


def test_ray_workers_without_ray_is_refused(tmp_path):
    result = ragqa("ingest", str(SAMPLES), "--index-dir", str(tmp_path), "--ray-workers", "2", timeout=60)
    assert result.returncode == 2 and "--ray-workers needs --ray" in result.stderr
    assert not (tmp_path / "default").exists()


def test_a_local_ingest_never_imports_ray():
    code = (
        "import sys, app.cli, app.wiring, ingest.run, app.api.main;"
        "from app.cli import cli;"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert result.returncode == 0


# --- slow: a local Ray cluster and the real model ----------------------------------------------


@pytest.mark.slow
def test_ray_without_an_address_ingests_on_a_local_cluster_of_its_own(tmp_path):
    """Runs before the module's cluster starts: `--ray` alone starts one for the run, and stops it."""
    result = ragqa(
        "ingest",
        str(SAMPLES),
        "--collection",
        "docs",
        "--index-dir",
        str(tmp_path),
        "--ray",
        "--ray-workers",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(last_line(result.stdout))
    assert (summary["added"], summary["skipped"], summary["embedded"]) == (5, [], summary["chunks"])
    assert IndexStore(tmp_path).load("docs").manifest.version == summary["version"]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module (starting Ray costs seconds): (ray, its address)."""
    import ray

    previous = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield ray, ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = previous


class NoLocalEmbedding:
    """The real model's description, but embedding here is a failure: Ray must embed."""

    def __init__(self, embedder):
        self.model_id, self.dim, self.batch_size, self.normalized = (
            embedder.model_id,
            embedder.dim,
            embedder.batch_size,
            True,
        )

    def embed_documents(self, texts):
        raise AssertionError(f"the driver embedded {len(texts)} texts; Ray should have")

    def embed_query(self, text):
        raise AssertionError("not used by ingest")


@pytest.fixture
def folder(tmp_path):
    """The samples, a PDF (pages), a nested Markdown file and a file that is skipped."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLES, docs)
    (docs / "guide.pdf").write_bytes(
        make_pdf(["Ray workers load and split documents.", "Embedding actors hold one model each."])
    )
    (docs / "nested").mkdir()
    (docs / "nested" / "notes.md").write_text("# Notes\n\n## Workers\n\nEach worker embeds a batch.\n" * 5)
    (docs / "binary.txt").write_bytes(b"\x00\x01 not text")
    return docs


def assert_same_collection(a_dir, b_dir, name: str) -> None:
    a, b = IndexStore(a_dir).load(name), IndexStore(b_dir).load(name)
    assert sorted(a.chunks) == sorted(b.chunks)
    assert a.chunks == b.chunks  # ids, documents, offsets, texts, pages, titles, sections
    assert a.manifest.documents == b.manifest.documents  # sha256 and chunk ids per document
    assert a.manifest.embedding == b.manifest.embedding and a.manifest.splitter == b.manifest.splitter
    ids = sorted(a.chunks)
    np.testing.assert_allclose(a.vectors_for(ids), b.vectors_for(ids), rtol=0, atol=1e-5)
    assert a.sentences is not None and b.sentences is not None  # embedded on Ray too (NoLocalEmbedding)
    np.testing.assert_array_equal(a.sentences.chunk_ids, b.sentences.chunk_ids)
    np.testing.assert_array_equal(a.sentences.spans, b.sentences.spans)
    np.testing.assert_allclose(a.sentences.vectors, b.sentences.vectors, rtol=0, atol=1e-3)  # float16


@pytest.mark.slow
def test_ray_ingest_writes_what_a_local_ingest_writes_and_sends_only_changed_documents(
    tmp_path, folder, embedder, ray_cluster
):
    from ingest.ray_runner import RayDocumentPreparer

    ray, _ = ray_cluster
    splitter = TextSplitter(200, 30, "title+section")
    handed: list[list[str]] = []
    on_ray = RayDocumentPreparer(ray, "the test's Ray cluster", workers=2)

    def prepare(work):
        handed.append([rel for rel, _ in work.documents])
        return on_ray(work)

    local = IngestJob(IndexStore(tmp_path / "local"), embedder, splitter)
    remote = IngestJob(IndexStore(tmp_path / "ray"), NoLocalEmbedding(embedder), splitter, prepare=prepare)

    summaries = [job.run(folder, "docs") for job in (local, remote)]
    assert summaries[1].added == 7 and summaries[1].chunks > 20
    assert (
        summaries[0].skipped
        == summaries[1].skipped
        == [{"path": "binary.txt", "reason": "binary content (NUL bytes)"}]
    )
    assert summaries[0].embedded == summaries[1].embedded
    assert summaries[0].sentences_embedded == summaries[1].sentences_embedded > 0
    assert_same_collection(tmp_path / "local", tmp_path / "ray", "docs")

    # Incremental: an edit, an addition and a deletion; unchanged documents never reach Ray.
    (folder / "faq.txt").write_text(
        (folder / "faq.txt").read_text() + "\n\nDoes ragqa run on Ray? It can ingest there.\n"
    )
    (folder / "added.md").write_text("# Added\n\nA document added after the first ingest.\n")
    (folder / "serving.md").unlink()
    summaries = [job.run(folder, "docs") for job in (local, remote)]
    assert handed[1] == ["added.md", "binary.txt", "faq.txt"]
    assert (summaries[1].added, summaries[1].updated, summaries[1].deleted, summaries[1].unchanged) == (
        1,
        1,
        1,
        5,
    )
    assert summaries[0].embedded == summaries[1].embedded < 10  # the edited file's old chunks are reused
    assert_same_collection(tmp_path / "local", tmp_path / "ray", "docs")


@pytest.mark.slow
def test_a_ray_worker_killed_mid_ingest_fails_the_run_and_the_previous_version_stays_live(
    tmp_path, folder, embedder, ray_cluster
):
    from ingest.ray_runner import EXIT_ON_DOCUMENT_ENV

    _, address = ray_cluster
    IngestJob(IndexStore(tmp_path / "indexes"), embedder, TextSplitter(1000, 150)).run(folder, "docs")
    before = collection_state(tmp_path / "indexes", "docs")
    (folder / "faq.txt").write_text("Changed, so it goes to Ray.\n")
    (folder / "z-last.md").write_text("# Last\n\nAdded, so it goes to Ray too.\n")

    result = ragqa(
        "ingest",
        str(folder),
        "--collection",
        "docs",
        "--index-dir",
        str(tmp_path / "indexes"),
        "--ray-address",
        address,
        "--ray-workers",
        "2",
        env={EXIT_ON_DOCUMENT_ENV: "z-last.md"},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert last_line(result.stderr).startswith(
        f"ingest failed: Ray ingest failed on the Ray cluster at {address}: ActorDiedError: "
    )
    assert collection_state(tmp_path / "indexes", "docs") == before  # no new version, nothing half-written
    assert IndexStore(tmp_path / "indexes").load("docs").manifest.version == before[0]

    # The same cluster still serves the next run, which completes.
    result = ragqa(
        "ingest",
        str(folder),
        "--collection",
        "docs",
        "--index-dir",
        str(tmp_path / "indexes"),
        "--ray-address",
        address,
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"updated": 1' in last_line(result.stdout) and '"added": 1' in last_line(result.stdout)
