"""Which embedding model a collection gets when none is set (issue 19 §3), with fake models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.core.config import DEFAULT_EMBEDDING_MODEL
from app.core.embeddings import (
    USE_MULTILINGUAL,
    EmbedderRegistry,
    model_for_text,
)
from app.core.store import IndexStore
from ingest.run import IngestError, IngestJob
from ingest.splitting import TextSplitter
from tests.fakes import FakeEmbedder

REPO = Path(__file__).resolve().parents[2]
KOREAN_DOCS = REPO / "tests" / "data" / "korean" / "docs"
SAMPLES = REPO / "samples" / "ragqa-docs"


class NamedFake(FakeEmbedder):
    """The fake embedder under a real model's id, so the rule's choice can be seen."""

    def __init__(self, model_id: str, dim: int = 256):
        super().__init__(dim)
        self.model_id = model_id


def registry() -> EmbedderRegistry:
    loaded: dict[str, NamedFake] = {}

    def load(name: str) -> NamedFake:
        loaded[name] = NamedFake(name, dim=128 if name == USE_MULTILINGUAL else 256)
        return loaded[name]

    reg = EmbedderRegistry(NamedFake(DEFAULT_EMBEDDING_MODEL), load)
    reg.made = loaded  # type: ignore[attr-defined]
    return reg


def job(index_dir: Path, reg: EmbedderRegistry, *, choose: bool = True) -> IngestJob:
    return IngestJob(IndexStore(index_dir), reg.default, TextSplitter(1000, 150), embedders=reg, choose_model=choose)


def test_the_rule_is_a_hangul_share_of_half_the_letters():
    assert model_for_text(50, 100) == USE_MULTILINGUAL
    assert model_for_text(49, 100) == DEFAULT_EMBEDDING_MODEL
    assert model_for_text(0, 0) == DEFAULT_EMBEDDING_MODEL
    assert model_for_text(10, 100, "some/model") == "some/model"


def test_korean_folder_gets_the_multilingual_model_and_the_manifest_says_so(tmp_path):
    summary = job(tmp_path, registry()).run(KOREAN_DOCS, "ko")
    manifest = IndexStore(tmp_path).read_manifest("ko")
    assert manifest.embedding.model == summary.embedding_model == USE_MULTILINGUAL
    assert manifest.embedding.dim == 128
    assert summary.added == 21 and summary.reembedded is None
    entry = next(iter(manifest.documents.values()))
    assert entry.letters and entry.hangul_letters and entry.hangul_letters / entry.letters > 0.9


def test_english_and_mixed_folders_keep_the_default(tmp_path):
    # samples/ragqa-docs: one Korean document of five, about 4 % of the letters Hangul.
    summary = job(tmp_path, registry()).run(SAMPLES, "samples")
    assert summary.embedding_model == DEFAULT_EMBEDDING_MODEL


def test_a_model_set_explicitly_wins(tmp_path):
    summary = job(tmp_path, registry(), choose=False).run(KOREAN_DOCS, "ko")
    assert summary.embedding_model == DEFAULT_EMBEDDING_MODEL


def test_reingesting_unchanged_embeds_nothing(tmp_path):
    reg = registry()
    job(tmp_path, reg).run(KOREAN_DOCS, "ko")
    korean = reg.made[USE_MULTILINGUAL]  # type: ignore[attr-defined]
    calls = korean.calls
    again = job(tmp_path, reg).run(KOREAN_DOCS, "ko")
    assert (again.unchanged, again.embedded, again.reembedded) == (21, 0, None)
    assert korean.calls == calls


def test_upgrading_a_korean_collection_made_with_the_english_model_reembeds_once(tmp_path):
    """A collection written before the rule (default model, no letter counts in its manifest)."""
    folder = tmp_path / "docs"
    shutil.copytree(KOREAN_DOCS, folder)
    index_dir = tmp_path / "ix"
    job(index_dir, registry(), choose=False).run(folder, "ko")
    _strip_letter_counts(IndexStore(index_dir), "ko")

    reg = registry()
    upgraded = job(index_dir, reg).run(folder, "ko")
    assert upgraded.reembedded and "Hangul" in upgraded.reembedded and USE_MULTILINGUAL in upgraded.reembedded
    assert (upgraded.updated, upgraded.added, upgraded.unchanged) == (21, 0, 0)
    assert upgraded.embedded > 0
    manifest = IndexStore(index_dir).read_manifest("ko")
    assert manifest.embedding.model == USE_MULTILINGUAL and manifest.embedding.dim == 128
    assert IndexStore(index_dir).load("ko").index.ntotal == manifest.chunk_count

    again = job(index_dir, reg).run(folder, "ko")
    assert (again.embedded, again.reembedded, again.unchanged) == (0, None, 21)


def test_an_old_english_collection_is_not_reembedded(tmp_path):
    index_dir = tmp_path / "ix"
    job(index_dir, registry(), choose=False).run(SAMPLES, "samples")
    version = IndexStore(index_dir).read_manifest("samples").version
    _strip_letter_counts(IndexStore(index_dir), "samples")
    summary = job(index_dir, registry()).run(SAMPLES, "samples")
    assert (summary.embedded, summary.reembedded, summary.version) == (0, None, version)


def test_uploads_use_the_collections_own_model(tmp_path):
    reg = registry()
    job(tmp_path, reg).run(KOREAN_DOCS, "ko")
    # A job whose model is set explicitly (the English default) still adds to the Korean collection.
    explicit = job(tmp_path, reg, choose=False)
    summary = explicit.add_files("ko", [("extra.txt", SAMPLES / "overview.md")])
    assert summary.added == 1
    assert IndexStore(tmp_path).read_manifest("ko").embedding.model == USE_MULTILINGUAL
    with pytest.raises(IngestError, match="RAGQA_EMBEDDING_MODEL"):
        explicit.run(KOREAN_DOCS, "ko")


def test_first_upload_to_a_new_collection_picks_by_its_text(tmp_path):
    summary = job(tmp_path, registry()).add_files("new", [("a.txt", KOREAN_DOCS / "kimchi.txt")])
    assert summary.embedding_model == USE_MULTILINGUAL


def _strip_letter_counts(store: IndexStore, collection: str) -> None:
    """Make the live manifest look like one written before letter counts were recorded."""
    path = store.collection_dir(collection) / store.current_version(collection) / "manifest.json"
    data = json.loads(path.read_text("utf-8"))
    for entry in data["documents"].values():
        entry.pop("letters", None)
        entry.pop("hangul_letters", None)
    path.write_text(json.dumps(data), "utf-8")
    store_manifest = store.read_manifest(collection)
    assert all(d.letters is None for d in store_manifest.documents.values())
