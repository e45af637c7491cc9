"""bench/retrieval.py and its peers (bench/peers.py): scoring, qrels, RRF, the cache, the pipelines."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from bench.peers import DiskCache, LangChainTextbook, rrf
from bench.retrieval import markdown_table, read_qrels, score
from tests.conftest import REPO

QUESTIONS = [
    {"id": "a", "question": "q a", "answers": ["red"], "doc": "x.txt"},
    {"id": "b", "question": "q b", "answers": ["blue"], "doc": "y.txt"},
    {"id": "c", "question": "q c", "answers": [], "doc": "x.txt", "answerable": False},
]


def fake_vectors(texts):
    """Deterministic unit vectors from a hash: enough to exercise the pipelines, no model."""
    out = []
    for t in texts:
        seed = int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)
        v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_score_counts_passages_and_uses_the_metrics_module():
    ranked = {
        "q a": [("z.txt", "none"), ("x.txt", "it is red")],  # hit at rank 2, passage hit
        "q b": [("y.txt", "no colour here")] + [("z.txt", "")] * 9,  # rank 1, no passage hit
        "q c": [("z.txt", "")],  # miss; unanswerable, so not in passage hit@5
    }
    r = score(lambda q: ranked[q], QUESTIONS)
    assert r["hit@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["hit@5"] == r["hit@10"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["mrr"] == pytest.approx((0.5 + 1.0) / 3, abs=1e-4)
    assert r["passage_hit@5"] == 0.5  # 1 of the 2 answerable
    assert r["ndcg@10"] is None  # no qrels: not reported
    assert r["questions"] == 3


def test_score_ndcg_from_qrels_counts_each_document_once():
    qrels = {"a": {"x.txt": 1.0}, "b": {"y.txt": 2.0, "w.txt": 1.0}, "c": {"x.txt": 1.0}}
    ranked = {
        "q a": [("x.txt", "red"), ("x.txt", "red")],
        "q b": [("w.txt", ""), ("w.txt", ""), ("y.txt", "blue")],  # docs: w (1), y (2)
        "q c": [],
    }
    r = score(lambda q: ranked[q], QUESTIONS, qrels)
    ideal_b = 2 + 1 / np.log2(3)
    got_b = 1 + 2 / np.log2(3)
    assert r["ndcg@10"] == pytest.approx((1 + got_b / ideal_b + 0) / 3, abs=1e-4)


def test_read_qrels(tmp_path):
    assert read_qrels(tmp_path) is None
    (tmp_path / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\ta.txt\t1\nq1\tb.txt\t2\nq2\ta.txt\t0\n"
    )
    assert read_qrels(tmp_path) == {"q1": {"a.txt": 1.0, "b.txt": 2.0}, "q2": {"a.txt": 0.0}}


def test_rrf_equal_weights_k60():
    assert rrf([[1, 2, 3], [3, 1]], k=60) == [1, 3, 2]
    assert rrf([[5], []], top=10) == [5]
    assert len(rrf([list(range(20)), list(range(20, 40))], top=10)) == 10


def test_disk_cache_encodes_each_text_once(tmp_path):
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return fake_vectors(texts)

    cache = DiskCache("m", encode, tmp_path / "c.sqlite")
    first = cache(["a", "b", "a"])
    again = DiskCache("m", encode, tmp_path / "c.sqlite")(["b", "a", "c"])
    assert calls == [["a", "b"], ["c"]]
    np.testing.assert_allclose(first[0], again[1])
    np.testing.assert_allclose(first[0], first[2])
    other = DiskCache("other-model", encode, tmp_path / "c.sqlite")
    other(["a"])
    assert calls[-1] == ["a"]  # keyed by model too


def _docs(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mail.txt").write_text("Mailboxes\n\nKorean mailboxes are red. Letters go in the slot.\n")
    (docs / "sea.txt").write_text("The sea\n\nThe sea is blue and deep. Fish swim there.\n" * 40)
    return docs


def test_langchain_textbook_pipeline(tmp_path):
    peer = LangChainTextbook(_docs(tmp_path), DiskCache("fake", fake_vectors, tmp_path / "c.sqlite"))
    assert len(peer.chunks) > 2 and all(len(text) <= 1000 for _, text in peer.chunks)
    assert peer.search("what colour are mailboxes", "bm25")[0][0] == "mail.txt"
    assert len(peer.search("what colour is the sea", "dense")) == min(10, len(peer.chunks))
    hybrid = peer.search("what colour are mailboxes", "hybrid")
    assert 0 < len(hybrid) <= 10 and "mail.txt" in [d for d, _ in hybrid]
    assert peer.search("the of and", "bm25") == []  # stopwords only


def test_haystack_defaults_pipeline(tmp_path):
    pytest.importorskip("haystack", reason="the .[bench] extra")
    from bench.peers import HaystackDefaults

    peer = HaystackDefaults(_docs(tmp_path), DiskCache("fake", fake_vectors, tmp_path / "c.sqlite"))
    assert peer.chunks >= 3  # 200-word chunks
    top = peer.search("what colour are mailboxes", "bm25")
    assert top[0][0] == "mail.txt" and "red" in top[0][1]
    assert len(peer.search("sea", "dense")) <= 10
    assert {d for d, _ in peer.search("mailboxes red", "hybrid")} <= {"mail.txt", "sea.txt"}


def test_markdown_table_has_one_row_per_pipeline():
    r = score(lambda q: [("x.txt", "red")], QUESTIONS)
    table = markdown_table({"results": {"ragqa": r, "langchain-bm25": r}})
    assert table.count("\n") == 3 and "| ragqa |" in table and "| - |" in table  # no nDCG without qrels


@pytest.mark.slow
def test_retrieval_bench_smoke(tmp_path):
    """The real script on 5 Korean questions: ragqa and all six peer runs, one table + JSON."""
    pytest.importorskip("haystack", reason="the .[bench] extra")
    data = tmp_path / "set"
    data.mkdir()
    korean = REPO / "tests" / "data" / "korean"
    (data / "docs").symlink_to(korean / "docs")
    lines = (korean / "questions.jsonl").read_text("utf-8").splitlines()[:5]
    (data / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "retrieval.py"), str(data), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**__import__("os").environ, "RAGQA_BENCH_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text("utf-8"))
    assert set(report["results"]) == {
        "ragqa",
        "langchain-dense",
        "langchain-bm25",
        "langchain-hybrid",
        "haystack-dense",
        "haystack-bm25",
        "haystack-hybrid",
    }
    for r in report["results"].values():
        assert r["questions"] == 5 and 0 <= r["passage_hit@5"] <= r["hit@5"] <= 1
    assert "| haystack-hybrid |" in done.stdout


def test_textbook_splitter_splits_as_the_langchain_peer(tmp_path):
    from bench.retrieval import TextbookSplitter
    from ingest.splitting import TextSplitter

    docs = _docs(tmp_path)
    # One paragraph, no line breaks: the textbook splitter cuts between words, ragqa's at sentence ends.
    (docs / "long.txt").write_text(
        " ".join(f"Sentence {i} says the sea holds {i * 7} fish." for i in range(120))
    )
    peer = LangChainTextbook(docs, DiskCache("fake", fake_vectors, tmp_path / "c.sqlite"))
    textbook, ours = TextbookSplitter(1000, 100), TextSplitter(1000, 100)
    for name in ("sea.txt", "long.txt"):
        text = (docs / name).read_text()
        pieces = textbook.split(text)
        assert [p.text for p in pieces] == [c for d, c in peer.chunks if d == name]
        assert all(text[p.start : p.start + len(p.text)] == p.text for p in pieces)
    long_text = (docs / "long.txt").read_text()
    assert all(p.text.endswith(".") for p in ours.split(long_text))
    assert not all(p.text.endswith(".") for p in textbook.split(long_text))
    assert textbook.info.name != ours.info.name


def test_textbook_splitter_is_what_the_bench_ingests(tmp_path):
    from app.core.store import IndexStore
    from bench.retrieval import TextbookSplitter, prepare_with
    from ingest.run import IngestJob
    from tests.fakes import FakeEmbedder

    docs = _docs(tmp_path)
    (docs / "long.txt").write_text(
        " ".join(f"Sentence {i} says the sea holds {i * 7} fish." for i in range(120))
    )
    peer = LangChainTextbook(docs, DiskCache("fake", fake_vectors, tmp_path / "c.sqlite"))
    splitter = TextbookSplitter(1000, 100)
    store = IndexStore(tmp_path / "index")
    IngestJob(store, FakeEmbedder(), splitter, prepare=prepare_with(splitter)).run(docs, "bench")
    chunks = store.load("bench").chunks.values()
    assert sorted((c.doc, c.text) for c in chunks) == sorted(peer.chunks)


def test_parse_setting_takes_candidates_per_ranking():
    from bench.retrieval import parse_setting

    plain = parse_setting("hybrid@0.5", 30)
    assert (plain.mode.value, plain.dense_weight, plain.candidates) == ("hybrid", 0.5, 30)
    short = parse_setting("hybrid@0.3+mmr0.2/c10", 30)
    assert (short.dense_weight, short.diversity, short.candidates) == (0.3, 0.2, 10)
    assert plain.sentence_scoring and not parse_setting("hybrid@0.3/c10/chunk", 30).sentence_scoring
    with pytest.raises(SystemExit):
        parse_setting("hybrid/10", 30)
