"""The metric functions against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from app.evaluation.metrics import (
    contains_gold,
    exact_match,
    first_relevant_rank,
    hit_at_k,
    max_over_golds,
    ndcg_at_k,
    normalize_answer,
    passage_hit,
    percentile,
    reciprocal_rank,
    token_f1,
    unique_in_order,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Normans", "normans"),
        ("  a   Tale of   an Apple. ", "tale of apple"),
        ("Denmark, Iceland and Norway!", "denmark iceland and norway"),
        ("theatre", "theatre"),  # 'the' inside a word stays
        ("“Norman” conquest—1066", "norman conquest1066"),  # unicode quotes and dash are punctuation
        ("ＡＢＣ　Ｄ", "abc d"),  # full-width letters and space, NFKC
        ("Café", "café"),  # accents are kept
        ("노르만족은 프랑스에", "노르만족은 프랑스에"),
        ("", ""),
    ],
)
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_exact_match_ignores_case_articles_and_punctuation():
    assert exact_match("the Normandy.", "Normandy") == 1.0
    assert exact_match("in Normandy", "Normandy") == 0.0


def test_token_f1_hand_computed():
    # prediction tokens: normans came from normandy (4); gold: normandy france (2); overlap 1
    # precision 1/4, recall 1/2, F1 = 2 * (1/8) / (3/4) = 1/3
    assert token_f1("The Normans came from Normandy", "Normandy, France") == pytest.approx(1 / 3)
    # repeated tokens count only as often as they occur in both
    assert token_f1("paris paris", "paris") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("London", "Paris") == 0.0


def test_empty_answers_follow_squad_v2():
    assert token_f1("", "") == 1.0
    assert token_f1("something", "") == 0.0
    assert token_f1("", "Paris") == 0.0
    assert exact_match("", "") == 1.0


def test_max_over_golds_takes_the_best():
    golds = ["10th century", "the 10th century", "in the 10th and 11th centuries"]
    assert max_over_golds(exact_match, "The 10th Century", golds) == 1.0
    assert max_over_golds(token_f1, "11th centuries", golds) == pytest.approx(2 * 1 * (2 / 5) / (1 + 2 / 5))
    assert max_over_golds(exact_match, "x", []) == 0.0


def test_contains_gold_on_token_bounds():
    assert contains_gold("The answer is: in the 10th century [1].", ["10th century"])
    assert not contains_gold("They were Normans", ["Norman"])  # not a token match
    assert not contains_gold("anything", [""])


def test_unique_in_order_keeps_the_best_rank():
    assert unique_in_order(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_hit_at_k_counts_passage_ranks():
    ranked = ["x", "x", "y", "gold", "gold"]  # the docs of the retrieved chunks, in rank order
    assert hit_at_k(ranked, {"gold"}, 3) == 0.0
    assert hit_at_k(ranked, {"gold"}, 4) == 1.0
    assert hit_at_k([], {"gold"}, 10) == 0.0
    assert first_relevant_rank(ranked, {"gold", "y"}, 10) == 3


def test_reciprocal_rank():
    assert reciprocal_rank(["a", "gold", "gold"], {"gold"}) == pytest.approx(1 / 2)
    assert reciprocal_rank(["gold"], {"gold"}) == 1.0
    assert reciprocal_rank(["a", "b", "gold"], {"gold"}, k=2) == 0.0
    assert reciprocal_rank(["a", "b"], {"gold"}) == 0.0
    # the first of several relevant documents counts
    assert reciprocal_rank(["a", "r2", "r1"], {"r1", "r2"}) == pytest.approx(1 / 2)


def log2(x):
    return math.log2(x)


def test_ndcg_binary_and_graded():
    assert ndcg_at_k(["gold", "a"], {"gold": 1}) == 1.0
    assert ndcg_at_k(["a", "gold"], {"gold": 1}) == pytest.approx(1 / log2(3))
    # graded: ideal order is r2 (2), r1 (1)
    dcg = 1 / log2(2) + 2 / log2(3)
    idcg = 2 / log2(2) + 1 / log2(3)
    assert ndcg_at_k(["r1", "r2"], {"r1": 1, "r2": 2}) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b"], {"gold": 1}) == 0.0
    assert ndcg_at_k(["a"], {}) == 0.0


def test_ndcg_counts_a_duplicate_document_once():
    # gold appears at chunk ranks 1 and 2; as documents: gold, a
    assert ndcg_at_k(["gold", "gold", "a"], {"gold": 1}) == 1.0
    # a duplicate ahead of the gold doc does not push it down twice: a, gold
    assert ndcg_at_k(["a", "a", "gold"], {"gold": 1}) == pytest.approx(1 / log2(3))


def test_ndcg_with_tied_scores_averages_over_the_tie():
    # a and gold tie at 0.9: each gets the mean discount of positions 1 and 2
    expected = (1 / log2(2) + 1 / log2(3)) / 2
    assert ndcg_at_k(["a", "gold"], {"gold": 1}, scores=[0.9, 0.9]) == pytest.approx(expected)
    assert ndcg_at_k(["gold", "a"], {"gold": 1}, scores=[0.9, 0.9]) == pytest.approx(expected)
    # without a tie the order counts
    assert ndcg_at_k(["a", "gold"], {"gold": 1}, scores=[0.9, 0.8]) == pytest.approx(1 / log2(3))


def test_ndcg_tie_across_the_cutoff():
    # k=1: a and gold tie for position 1-2, only position 1 is inside the cutoff
    assert ndcg_at_k(["a", "gold"], {"gold": 1}, k=1, scores=[0.5, 0.5]) == pytest.approx(0.5)


def test_ndcg_rejects_mismatched_scores():
    with pytest.raises(ValueError):
        ndcg_at_k(["a", "b"], {"a": 1}, scores=[1.0])


def test_passage_hit_needs_the_gold_doc_and_the_answer():
    passages = [("a.txt", "Paris is big"), ("gold.txt", "It lies in Normandy, France.")]
    assert passage_hit(passages, "gold.txt", ["Normandy"])
    assert not passage_hit(passages, "gold.txt", ["Paris"])  # right text, wrong doc
    assert not passage_hit(passages[:1], "gold.txt", ["Normandy"])


def test_percentile_interpolates_like_numpy():
    values = [10, 20, 30, 40]
    assert percentile(values, 50) == 25
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None


def test_contains_gold_lets_korean_particles_follow_the_gold():
    assert contains_gold("우체통은 빨간색입니다.", ["빨간색"])
    assert not contains_gold("우체통은 새빨간색입니다.", ["빨간색"])  # still needs a word start
    assert not contains_gold("They were Normans", ["Norman"])  # English keeps both bounds
