"""Tokenization by language and the stored BM25 index (no pickle, exact round trip)."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.lexical import (
    WHITESPACE_TOKENIZER,
    LexicalIndex,
    LexicalIndexMissing,
    hangul_share,
    is_korean,
    korean_morphemes,
    term_set,
    tokenize,
)


def test_kiwi_splits_particles_from_nouns():
    morphemes = korean_morphemes("우체통은 빨간색이다.")
    assert morphemes[:2] == [("우체통", "NNG"), ("은", "JX")]


def test_korean_terms_are_content_morphemes():
    assert tokenize("우체통은 빨간색이다.") == ["우체통", "빨간색"]
    # The same noun with other particles gives the same term; whitespace keeps the eojeol.
    assert tokenize("우체통이 있어요?")[0] == "우체통"
    assert tokenize("우체통은 빨간색이다.", WHITESPACE_TOKENIZER) == ["우체통은", "빨간색이다"]


def test_latin_words_in_korean_text_match_english_terms():
    assert "fastapi" in tokenize("FastAPI는 2024년에 출시됐어요.")
    assert tokenize("FastAPI was released") == ["fastapi", "released"]  # stopword 'was' dropped


def test_language_is_chosen_by_hangul_share():
    assert hangul_share("abc") == 0.0
    assert hangul_share("한국어") == 1.0
    assert is_korean("이 문장은 한국어로 쓰인 문장이다 with English")
    assert not is_korean("An English sentence that quotes 서울 once.")


def test_term_sets_are_the_tokenizers_terms_and_kept_for_repeated_texts():
    for text in ("FastAPI는 2024년에 출시됐어요.", "The mailbox is red, the mailbox is old.", "", "?!"):
        assert term_set(text) == frozenset(tokenize(text))
    hits = term_set.cache_info().hits
    assert term_set("The mailbox is red, the mailbox is old.") is term_set("The mailbox is red, the mailbox is old.")
    assert term_set.cache_info().hits >= hits + 2


def _corpus():
    return [
        (10, "우체통은 빨간색이다. 편지를 넣는다."),
        (11, "The mailbox is red and stands on the corner."),
        (12, "고양이가 우체통 위에 앉아 있어요."),
        (13, "Kimchi is fermented cabbage."),
    ]


def test_bm25_finds_korean_and_english(tmp_path):
    index = LexicalIndex.build(_corpus())
    assert {cid for cid, _ in index.search("우체통이 무슨 색이에요?", 5)} == {10, 12}
    assert index.search("빨간색 우체통", 1)[0][0] == 10
    assert index.search("fermented cabbage", 5)[0][0] == 13
    assert index.search("nothing matches zzz", 5) == []
    assert index.search("", 5) == []


def test_round_trip_without_pickle(tmp_path):
    index = LexicalIndex.build(_corpus())
    index.save(tmp_path / "bm25")
    for path in (tmp_path / "bm25").iterdir():
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)  # raises if the array needs pickle
        head = path.read_bytes()[:2]
        assert not (head[0] == 0x80 and 2 <= head[1] <= 5), path
    loaded = LexicalIndex.load(tmp_path / "bm25")
    for query in ("우체통", "mailbox corner", "kimchi"):
        assert loaded.search(query, 4) == index.search(query, 4)


def test_empty_and_missing_index(tmp_path):
    LexicalIndex.build([]).save(tmp_path / "empty")
    assert LexicalIndex.load(tmp_path / "empty").search("anything", 3) == []
    with pytest.raises(LexicalIndexMissing):
        LexicalIndex.load(tmp_path / "absent")


def test_search_scores_as_bm25s_ranks_them(tmp_path):
    """Built from term ids and scored without bm25s.retrieve, after a memory-mapped reload:
    the same scores as bm25s over the term lists, best first, ties by row."""
    import bm25s

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(800)]
    index = LexicalIndex.build(((1000 + i, t) for i, t in enumerate(texts)), WHITESPACE_TOKENIZER)
    index.save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25")
    reference = bm25s.BM25()
    reference.index([tokenize(t, WHITESPACE_TOKENIZER) for t in texts], show_progress=False)
    for query in ("w1 w2 w3", "w7", "w10 w20 w5 w5", "w3 unknown"):
        terms = [t for t in query.split() if t in reference.vocab_dict]
        expected = reference.get_scores(terms)
        hits = loaded.search(query, 10)
        assert len(hits) == min(10, int(np.count_nonzero(expected)))
        scores = [s for _, s in hits]
        np.testing.assert_allclose(scores, np.sort(expected)[::-1][: len(hits)], rtol=1e-6)
        for chunk_id, score in hits:
            assert expected[chunk_id - 1000] == pytest.approx(score, rel=1e-6)
        ties = [(s, c) for c, s in hits]
        assert ties == sorted(ties, key=lambda t: (-t[0], t[1]))
    assert loaded.search("unknown", 5) == []
    assert len(loaded.search("w1", 10_000)) == int(np.count_nonzero(reference.get_scores(["w1"])))


def test_concurrent_first_callers_make_one_kiwi(monkeypatch):
    import sys
    import threading
    import time
    import types

    from app.core import lexical

    made = []

    class SlowKiwi:
        def __init__(self):
            time.sleep(0.2)  # the real one takes seconds: time for other threads to arrive
            made.append(self)

    monkeypatch.setitem(sys.modules, "kiwipiepy", types.SimpleNamespace(Kiwi=SlowKiwi))
    lexical._load_kiwi.cache_clear()
    try:
        got: list[object] = []
        threads = [threading.Thread(target=lambda: got.append(lexical._kiwi())) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(made) == 1 and len(got) == 8 and all(k is made[0] for k in got)
    finally:
        lexical._load_kiwi.cache_clear()
