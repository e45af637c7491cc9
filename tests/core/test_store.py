"""The index format: round trip, no pickle, atomic versions, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from app.core import store as store_module
from app.core.store import (
    Chunk,
    CollectionCache,
    CollectionIndex,
    CollectionNotFound,
    DocumentEntry,
    EmbeddingInfo,
    IndexStore,
    InvalidCollectionName,
    Manifest,
    SplitterInfo,
    new_faiss_index,
)

DIM = 8


def make_collection(name: str, n: int, seed: int = 0) -> CollectionIndex:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = new_faiss_index(DIM)
    ids = np.arange(n, dtype=np.int64)
    index.add_with_ids(vectors, ids)
    chunks = {i: Chunk(i, f"doc{i % 3}.txt", 10 * i, f"chunk text {i} with ünïcode 한국어") for i in range(n)}
    docs = {
        f"doc{d}.txt": DocumentEntry(sha256=f"{d:064x}", chunk_ids=[i for i in range(n) if i % 3 == d])
        for d in range(3)
    }
    manifest = Manifest(
        collection=name,
        embedding=EmbeddingInfo(model="test-model", dim=DIM),
        splitter=SplitterInfo(name="test", chunk_size=100, chunk_overlap=10),
        documents=docs,
        next_chunk_id=n,
    )
    return CollectionIndex(manifest, index, chunks)


def test_round_trip_gives_identical_search(tmp_path):
    store = IndexStore(tmp_path)
    original = make_collection("docs", 50)
    version = store.write(original)

    loaded = store.load("docs")
    assert loaded.version == version
    assert loaded.chunks == original.chunks
    assert loaded.manifest.documents == original.manifest.documents
    query = original.vectors_for([7])[0]
    before = original.search(query, 10)
    after = loaded.search(query, 10)
    assert [(h.chunk.id, h.score) for h in after] == [(h.chunk.id, h.score) for h in before]
    assert after[0].chunk.id == 7 and after[0].score == pytest.approx(1.0, abs=1e-5)


def test_folder_holds_no_pickle(tmp_path):
    IndexStore(tmp_path).write(make_collection("docs", 20))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"CURRENT", "manifest.json", "index.faiss", "chunks.jsonl"}
    for path in files:
        assert path.suffix not in {".pkl", ".pickle"}
        head = path.read_bytes()[:2]
        # Pickle protocols 2-5 start with 0x80 and the protocol number.
        assert not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5), path


def test_new_version_swaps_in_and_old_ones_are_pruned(tmp_path):
    store = IndexStore(tmp_path)
    versions = [store.write(make_collection("docs", 5 + i, seed=i)) for i in range(4)]
    assert store.current_version("docs") == versions[-1]
    assert store.load("docs").index.ntotal == 8
    on_disk = sorted(p.name for p in (tmp_path / "docs").iterdir() if p.name.startswith("v"))
    assert on_disk == sorted(versions[-2:])  # the live one and one previous


def test_failed_write_leaves_previous_version_live(tmp_path, monkeypatch):
    store = IndexStore(tmp_path)
    good = store.write(make_collection("docs", 10))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_write_file", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write(make_collection("docs", 30, seed=1))
    monkeypatch.undo()

    assert store.current_version("docs") == good
    assert store.load("docs").index.ntotal == 10
    assert not list((tmp_path / "docs").glob(".tmp-*"))


def test_unknown_collection_lists_known_ones(tmp_path):
    store = IndexStore(tmp_path)
    store.write(make_collection("alpha", 3))
    store.write(make_collection("beta", 3))
    with pytest.raises(CollectionNotFound) as excinfo:
        store.load("gamma")
    assert "alpha" in str(excinfo.value) and "beta" in str(excinfo.value)
    assert store.list_collections() == ["alpha", "beta"]


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 65, "a..b"])
def test_collection_names_cannot_escape_the_index_dir(tmp_path, name):
    with pytest.raises(InvalidCollectionName):
        IndexStore(tmp_path).collection_dir(name)


def test_cache_reloads_when_a_new_version_goes_live(tmp_path):
    store = IndexStore(tmp_path)
    store.write(make_collection("docs", 5))
    cache = CollectionCache(store)
    first = cache.get("docs")
    assert cache.get("docs") is first  # unchanged version: no reload
    store.write(make_collection("docs", 9, seed=2))
    second = cache.get("docs")
    assert second is not first and second.index.ntotal == 9
    assert first.index.ntotal == 5  # a reader holding the old version is unaffected


def test_delete_removes_the_collection(tmp_path):
    store = IndexStore(tmp_path)
    store.write(make_collection("docs", 5))
    store.delete("docs")
    assert store.list_collections() == []
    with pytest.raises(CollectionNotFound):
        store.load("docs")


def test_page_numbers_round_trip_and_old_chunk_files_still_load(tmp_path):
    store = IndexStore(tmp_path)
    collection = make_collection("docs", 6)
    collection.chunks[4] = Chunk(4, "doc1.txt", 40, "on page two", page=2)
    store.write(collection)
    loaded = store.load("docs")
    assert loaded.chunks[4].page == 2 and loaded.chunks[0].page is None

    # A chunks.jsonl written before pages existed has no "page" key at all.
    version_dir = tmp_path / "docs" / store.current_version("docs")
    lines = (version_dir / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    assert '"page"' in lines[4] and all('"page"' not in ln for i, ln in enumerate(lines) if i != 4)
    (version_dir / "chunks.jsonl").write_text(
        "".join(ln.replace(', "page": 2', "") + "\n" for ln in lines), encoding="utf-8"
    )
    assert store.load("docs").chunks[4].page is None


def test_pruning_keeps_the_previously_live_version_over_an_orphan(tmp_path):
    store = IndexStore(tmp_path)
    live = store.write(make_collection("docs", 5))
    # A crash between the version rename and the CURRENT swap leaves a newer, never-live folder.
    orphan = tmp_path / "docs" / "vzzzz-orphan"
    (tmp_path / "docs" / live).rename(orphan)
    import shutil

    shutil.copytree(orphan, tmp_path / "docs" / live)
    newest = store.write(make_collection("docs", 7, seed=3))
    on_disk = sorted(p.name for p in (tmp_path / "docs").iterdir() if p.name.startswith("v"))
    assert on_disk == sorted([live, newest])


def test_cache_keeps_serving_when_the_new_version_is_unreadable(tmp_path):
    store = IndexStore(tmp_path)
    store.write(make_collection("docs", 5))
    cache = CollectionCache(store)
    first = cache.get("docs")
    broken = store.write(make_collection("docs", 9, seed=2))
    (tmp_path / "docs" / broken / "index.faiss").write_bytes(b"garbage")
    assert cache.get("docs") is first
    fresh = CollectionCache(store)  # nothing loaded yet: a clear error, not a crash
    with pytest.raises(store_module.CorruptCollection, match="cannot be loaded"):
        fresh.get("docs")


def test_cache_does_not_keep_a_version_pruned_while_it_was_read(tmp_path, monkeypatch):
    """Two writes land while the cache reads a version, and pruning takes that version's BM25
    folder before the reader opens it: read that way, it looks like a collection written before
    BM25 (a 409 for every hybrid query). The cache reads the live version instead."""
    store = IndexStore(tmp_path)
    read = store.write(make_collection("docs", 5))
    version_dir, as_read = tmp_path / "docs" / read, tmp_path / "as-read"
    load = IndexStore.load
    raced = []

    def load_while_writing(self, name):
        if raced:
            return load(self, name)
        raced.append(read)
        shutil.copytree(version_dir, as_read)
        store.write(make_collection("docs", 7, seed=2))
        store.write(make_collection("docs", 9, seed=3))
        assert not version_dir.exists()  # pruned
        # What the reader saw: the pruned version's files, all but the BM25 folder.
        shutil.copytree(as_read, version_dir)
        shutil.rmtree(version_dir / store_module.BM25_DIR)
        with monkeypatch.context() as m:
            m.setattr(self, "_require_version", lambda _: read)
            partial = load(self, name)
        shutil.rmtree(version_dir)
        assert partial.version == read and partial.lexical is None
        return partial

    monkeypatch.setattr(IndexStore, "load", load_while_writing)
    loaded = CollectionCache(store).get("docs")
    assert raced and loaded.version == store.current_version("docs") != read
    assert loaded.index.ntotal == 9 and loaded.lexical is not None


def test_title_and_section_round_trip_and_rows_without_them_still_load(tmp_path):
    store = IndexStore(tmp_path)
    collection = make_collection("docs", 6)
    collection.chunks[2] = Chunk(2, "doc2.txt", 20, "cranes lift", title="Harbour", section="Cranes")
    store.write(collection)
    loaded = store.load("docs")
    assert (loaded.chunks[2].title, loaded.chunks[2].section) == ("Harbour", "Cranes")
    assert (loaded.chunks[0].title, loaded.chunks[0].section) == (None, None)
    lines = (
        (tmp_path / "docs" / store.current_version("docs") / "chunks.jsonl").read_text("utf-8").splitlines()
    )
    assert all('"title"' not in ln and '"section"' not in ln for i, ln in enumerate(lines) if i != 2)


def test_manifest_without_a_header_rule_means_no_header():
    splitter = SplitterInfo.model_validate(
        {"name": "recursive_sentences/2", "chunk_size": 1000, "chunk_overlap": 150}
    )
    assert splitter.header is None
    chunk = Chunk(0, "a.txt", 100, "Some text.", title="A title", section="A section")
    assert store_module.indexed_text(chunk, splitter.header) == "Some text."


def test_header_rule_title_and_section():
    rule = store_module.TITLE_SECTION_HEADER
    chunk = Chunk(0, "a.txt", 100, "Cranes lift boxes.", title="Zanzibar harbour", section="Loading")
    assert store_module.indexed_text(chunk, rule) == "Zanzibar harbour — Loading\n\nCranes lift boxes."
    # A chunk that starts with its title or its section does not repeat it.
    first = Chunk(
        1, "a.md", 0, "# Zanzibar harbour\n\nIntro.", title="Zanzibar harbour", section="Zanzibar harbour"
    )
    assert store_module.indexed_text(first, rule) == first.text
    under = Chunk(2, "a.md", 50, "## Loading\n\nCranes.", title="Zanzibar harbour", section="Loading")
    assert store_module.chunk_header(under, rule) == "Zanzibar harbour"
    # A title longer than TITLE_HEADER_WORDS words is left out; the section stays.
    words = [f"w{i}" for i in range(store_module.TITLE_HEADER_WORDS + 1)]
    long = Chunk(3, "p.txt", 9, "Body.", title=" ".join(words), section="Methods")
    assert store_module.chunk_header(long, rule) == "Methods"
    short = Chunk(3, "p.txt", 9, "Body.", title=" ".join(words[:-1]))
    assert store_module.chunk_header(short, rule) == " ".join(words[:-1])
    assert store_module.chunk_header(Chunk(4, "n.txt", 0, "Body."), rule) == ""
    with pytest.raises(store_module.StoreError, match="unknown chunk header rule"):
        store_module.chunk_header(chunk, "title+summary")
