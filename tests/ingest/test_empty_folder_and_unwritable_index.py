"""An empty document folder (a wrong path, a failed mount) changes nothing; an index folder that
cannot be written is a clear error, not a traceback."""

from __future__ import annotations

import json
import subprocess

import pytest

from app.core.store import IndexStore
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.conftest import RAGQA

pytestmark = pytest.mark.slow


@pytest.fixture
def job(tmp_path, embedder):
    return IngestJob(IndexStore(tmp_path / "indexes"), embedder, TextSplitter(300, 50))


@pytest.fixture
def docs(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The alpha project ships rockets. " * 5)
    (docs / "b.txt").write_text("The beta project builds boats. " * 5)
    return docs


def test_empty_folder_keeps_the_collection_and_says_why(job, docs, tmp_path):
    first = job.run(docs, "default")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".hidden").write_text("not a document")
    summary = job.run(empty, "default")
    assert summary.deleted == 0 and summary.added == 0
    assert summary.reason and "no document in" in summary.reason and str(empty) in summary.reason
    assert summary.version == first.version and summary.chunks == first.chunks
    assert job.store.current_version("default") == first.version
    assert set(job.store.read_manifest("default").documents) == {"a.txt", "b.txt"}


def test_empty_folder_into_a_new_collection_writes_nothing(job, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    summary = job.run(empty, "fresh")
    assert summary.reason and summary.version is None
    assert job.store.list_collections() == []


def test_allow_empty_really_empties_it(job, docs, tmp_path):
    job.run(docs, "default")
    empty = tmp_path / "empty"
    empty.mkdir()
    summary = job.run(empty, "default", allow_empty=True)
    assert summary.reason is None and summary.deleted == 2
    assert job.store.read_manifest("default").documents == {}


def test_cli_empty_folder_exits_0_and_prints_the_reason(tmp_path, docs):
    ix = str(tmp_path / "ix")
    subprocess.run([str(RAGQA), "ingest", str(docs), "--index-dir", ix], capture_output=True, check=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [str(RAGQA), "ingest", str(empty), "--index-dir", ix, "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "nothing ingested" in result.stderr and "--allow-empty" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["deleted"] == 0 and "no document in" in summary["reason"]
    assert set(IndexStore(tmp_path / "ix").read_manifest("default").documents) == {"a.txt", "b.txt"}

    emptied = subprocess.run(
        [str(RAGQA), "ingest", str(empty), "--index-dir", ix, "--allow-empty", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(emptied.stdout.strip().splitlines()[-1])["deleted"] == 2


def test_cli_unwritable_index_folder_is_exit_2_with_a_hint(docs):
    # /sys refuses a new folder even to root (EPERM), as a root-owned mount refuses uid 10001.
    result = subprocess.run(
        [str(RAGQA), "ingest", str(docs), "--index-dir", "/sys/ragqa-cannot-write/ix"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "cannot write the index folder /sys/ragqa-cannot-write/ix" in result.stderr
    assert "chown -R" in result.stderr and "Traceback" not in result.stderr
