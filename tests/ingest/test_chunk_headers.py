"""Chunk headers at ingest, with the fake embedder: what is stored, what is indexed, and upgrades."""

from __future__ import annotations

import json

import pytest

from app.core.store import CHUNKS_FILE, MANIFEST_FILE, TITLE_SECTION_HEADER, CollectionCache, IndexStore
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever
from ingest.run import IngestJob
from ingest.splitting import TextSplitter
from tests.fakes import FakeEmbedder

FILLER = " ".join(f"Sentence {i} describes routine maintenance work." for i in range(40))


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "harbour.md").write_text(
        f"# Zanzibar harbour\n\n{FILLER}\n\n## Cranes\n\nThe cranes lift containers. {FILLER}\n"
    )
    (docs / "oneline.txt").write_text("A single line about lighthouses.")
    return docs


def job(tmp_path, header: str | None) -> IngestJob:
    return IngestJob(IndexStore(tmp_path / "indexes"), FakeEmbedder(), TextSplitter(300, 50, header))


def test_chunks_carry_title_and_section_and_only_the_index_sees_the_header(tmp_path, folder):
    summary = job(tmp_path, TITLE_SECTION_HEADER).run(folder, "c")
    index = IndexStore(tmp_path / "indexes").load("c")
    assert summary.added == 2 and index.manifest.splitter.header == TITLE_SECTION_HEADER
    harbour = sorted((c for c in index.chunks.values() if c.doc == "harbour.md"), key=lambda c: c.start)
    assert {c.title for c in harbour} == {"Zanzibar harbour"}
    assert harbour[0].section is None  # under the title's own heading
    assert harbour[-1].section == "Cranes"
    assert all("Zanzibar" not in c.text for c in harbour[1:])  # the passage is the chunk alone
    (oneline,) = [c for c in index.chunks.values() if c.doc == "oneline.txt"]
    assert oneline.title == "oneline" and oneline.section is None
    # "Zanzibar" is only in the title: BM25 finds the later chunks by it through their header.
    found = {cid for cid, _ in index.lexical.search("Zanzibar", 50)}
    assert {c.id for c in harbour} <= found


def test_without_headers_a_title_word_finds_only_the_chunk_that_holds_it(tmp_path, folder):
    job(tmp_path, None).run(folder, "c")
    index = IndexStore(tmp_path / "indexes").load("c")
    found = {cid for cid, _ in index.lexical.search("Zanzibar", 50)}
    assert found == {c.id for c in index.chunks.values() if "Zanzibar" in c.text}
    assert all(c.title for c in index.chunks.values())  # stored for display all the same


def make_old_format(index_dir, name: str) -> None:
    """Strip what this change added: the manifest's header rule and the chunks' title and section."""
    cdir = index_dir / name
    version = cdir / (cdir / "CURRENT").read_text().strip()
    manifest = json.loads((version / MANIFEST_FILE).read_text())
    del manifest["splitter"]["header"]
    (version / MANIFEST_FILE).write_text(json.dumps(manifest))
    rows = [json.loads(line) for line in (version / CHUNKS_FILE).read_text().splitlines()]
    for row in rows:
        row.pop("title", None)
        row.pop("section", None)
    (version / CHUNKS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_old_collection_loads_answers_and_upgrades_once(tmp_path, folder):
    job(tmp_path, None).run(folder, "c")
    make_old_format(tmp_path / "indexes", "c")
    store = IndexStore(tmp_path / "indexes")
    old = store.load("c")
    assert old.manifest.splitter.header is None and all(c.title is None for c in old.chunks.values())
    retriever = Retriever(CollectionCache(store), FakeEmbedder())
    passages = retriever.run("cranes lift containers", "c", 3, RetrievalOptions(mode=RetrievalMode.hybrid))
    assert passages and passages[0].doc == "harbour.md" and passages[0].title is None

    # The same settings as it was written with: nothing to do.
    same = job(tmp_path, None).run(folder, "c")
    assert same.embedded == 0 and same.reembedded is None and same.unchanged == 2

    upgrade = job(tmp_path, TITLE_SECTION_HEADER).run(folder, "c")
    assert upgrade.reembedded and "chunk header rule none -> title+section" in upgrade.reembedded
    assert upgrade.embedded > 0 and upgrade.updated == 2
    upgraded = store.load("c")
    assert upgraded.manifest.splitter.header == TITLE_SECTION_HEADER
    assert all(c.title for c in upgraded.chunks.values())

    again = job(tmp_path, TITLE_SECTION_HEADER).run(folder, "c")
    assert again.embedded == 0 and again.reembedded is None and again.unchanged == 2
    assert again.version == upgraded.version


def test_a_new_chunk_size_says_so_and_reuses_unchanged_chunk_vectors(tmp_path, folder):
    job(tmp_path, None).run(folder, "c")
    resized = IngestJob(IndexStore(tmp_path / "indexes"), FakeEmbedder(), TextSplitter(400, 50)).run(
        folder, "c"
    )
    assert resized.reembedded and "300/50 -> recursive_sentences/2 400/50" in resized.reembedded
    assert "header" not in resized.reembedded
    assert resized.reused >= 1  # the one-line document's chunk is the same text: not embedded again


def test_uploads_follow_the_collections_header_rule(tmp_path, folder):
    job(tmp_path, TITLE_SECTION_HEADER).run(folder, "c")
    extra = tmp_path / "extra.md"
    extra.write_text("# Quokka notes\n\n" + FILLER)
    summary = job(tmp_path, None).add_files("c", [("extra.md", extra)])
    index = IndexStore(tmp_path / "indexes").load("c")
    assert summary.added == 1 and summary.reembedded is None
    assert index.manifest.splitter.header == TITLE_SECTION_HEADER
    extra_ids = {c.id for c in index.chunks.values() if c.doc == "extra.md"}
    assert extra_ids <= {cid for cid, _ in index.lexical.search("quokka", 50)}
