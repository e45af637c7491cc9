"""The ``ragqa`` commands with the fake embedder (fast tier)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from app.core.config import get_settings
from app.core.store import CollectionCache, IndexStore
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever
from tests.fakes import FAKE_EMBEDDING_MODEL, FakeEmbedder, ingest_samples

QUESTION = "How do I delete a collection?"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An index of the samples, RAGQA_ settings for it, and the fake embedder in the wiring."""
    ingest_samples(tmp_path)
    monkeypatch.setenv("RAGQA_INDEX_DIR", str(tmp_path))
    monkeypatch.setenv("RAGQA_EMBEDDING_MODEL", FAKE_EMBEDDING_MODEL)
    monkeypatch.setattr("app.wiring.build_embedder", lambda settings, lazy=False: FakeEmbedder())
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def retrieved(index_dir, mode: RetrievalMode, top_k: int) -> list[int]:
    retriever = Retriever(CollectionCache(IndexStore(index_dir)), FakeEmbedder(), RetrievalOptions(mode))
    return [p.id for p in retriever.run(QUESTION, "default", top_k)]


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_map_question_retrieves_as_the_service_does(env, monkeypatch, mode):
    """`ragqa map --question` honours RAGQA_RETRIEVAL_MODE, as /v1/collections/{name}/map.png does."""
    from app.cli import cli

    monkeypatch.setenv("RAGQA_RETRIEVAL_MODE", mode)
    drawn = {}

    def fake_project(index, max_points):  # t-SNE is the slow part, and not under test here
        ids = sorted(index.chunks)
        flags = np.zeros(len(ids), dtype=bool)
        return SimpleNamespace(
            chunk_ids=ids,
            total_chunks=len(ids),
            sampled=False,
            near_duplicate=flags,
            outlier=flags,
            seconds=0.0,
        )

    def fake_render(projection, highlighted, question):
        drawn["highlighted"] = highlighted
        return b"png"

    monkeypatch.setattr("app.viz.embedding_map.project", fake_project)
    monkeypatch.setattr("app.viz.embedding_map.render_png", fake_render)
    out = env / "map.png"
    result = CliRunner().invoke(
        cli, ["map", "default", "--question", QUESTION, "--top-k", "3", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["collection"] == "default"
    assert drawn["highlighted"] == retrieved(env, RetrievalMode(mode), 3)
    assert retrieved(env, RetrievalMode.dense, 3) != retrieved(env, RetrievalMode.bm25, 3)


def test_collections_list(env):
    from app.cli import cli

    listed = CliRunner().invoke(cli, ["collections", "list", "--json"])
    assert listed.exit_code == 0
    assert json.loads(listed.stdout)["collections"][0]["documents"] == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "ponder"], "'ponder' is not one of"),
        (["--prompt-mode", "ten_shot"], "'ten_shot' is not one of"),
        (["--refusal-min-score", "2"], "Invalid value for '--refusal-min-score'"),
        (["--refusal-min-score", "0.3", "--url", "http://127.0.0.1:9"], "in-process"),
    ],
)
def test_bad_eval_options_exit_2(tmp_path, args, message):
    from app.cli import cli

    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "q.jsonl"), "--collection", "c", *args])
    assert result.exit_code == 2 and message in result.output


def test_console_script_entry_point():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["ragqa"] == "app.cli:main"
    from app.cli import main

    assert callable(main)
