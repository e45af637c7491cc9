"""Score fusion (convex combination), its hedge and maximal marginal relevance on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest

from app.rag.retrieval import (
    REPEATED_DOCUMENT_PENALTY,
    convex_combination,
    hedged,
    maximal_marginal_relevance,
)


def test_fused_scores_are_the_weighted_sum_of_min_max_scaled_scores():
    dense = [(1, 0.9), (2, 0.5), (3, 0.4)]  # scaled: 1, 0.2, 0
    lexical = [(3, 12.0), (4, 6.0), (1, 4.0)]  # scaled: 1, 0.25, 0
    fused = dict(convex_combination(dense, lexical, 0.6))
    assert fused[1] == pytest.approx(0.6 * 1.0 + 0.4 * 0.0)
    assert fused[2] == pytest.approx(0.6 * 0.2)  # absent from BM25's list: 0 from it
    assert fused[3] == pytest.approx(0.6 * 0.0 + 0.4 * 1.0)
    assert fused[4] == pytest.approx(0.4 * 0.25)
    assert [cid for cid, _ in convex_combination(dense, lexical, 0.6)] == [1, 3, 2, 4]


def test_a_wide_lead_counts_where_ranks_would_tie():
    # Both lists put a different chunk first; the dense list's leader wins by far, BM25's by a hair.
    dense = [(1, 0.95), (2, 0.30), (3, 0.29)]
    lexical = [(2, 10.0), (1, 9.9), (3, 1.0)]
    assert convex_combination(dense, lexical, 0.5)[0][0] == 1


def test_the_weight_favours_one_list_and_its_ends_keep_the_other_order():
    dense, lexical = [(1, 0.9), (2, 0.6), (3, 0.3)], [(3, 9.0), (2, 6.0), (1, 3.0)]
    assert convex_combination(dense, lexical, 0.9)[0][0] == 1
    assert convex_combination(dense, lexical, 0.1)[0][0] == 3
    assert [cid for cid, _ in convex_combination(dense, lexical, 1.0)] == [1, 2, 3]
    assert [cid for cid, _ in convex_combination(dense, lexical, 0.0)] == [3, 2, 1]
    # No dense list at all (a model that does not cover the language): BM25's order.
    assert [cid for cid, _ in convex_combination([], lexical, 0.0)] == [3, 2, 1]


def test_equal_scores_and_ties_are_defined():
    # A list whose scores are all equal scales to 1: its chunks still beat ones it lacks.
    fused = dict(convex_combination([(1, 0.5), (2, 0.5)], [(2, 3.0)], 0.5))
    assert fused == {1: pytest.approx(0.5), 2: pytest.approx(1.0)}
    # Tied fused scores keep the order first seen, dense list first.
    assert [cid for cid, _ in convex_combination([(5, 0.8), (6, 0.2)], [(6, 2.0), (5, 1.0)], 0.5)] == [5, 6]
    assert convex_combination([], [], 0.65) == []


DOCS = {1: "a", 2: "a", 3: "a", 4: "b", 5: "c", 6: "d", 7: "e", 8: "f", 9: "g"}


def test_a_third_passage_of_one_document_needs_a_clear_lead():
    close = [(1, 1.0), (2, 0.95), (3, 0.90), (4, 0.90 - REPEATED_DOCUMENT_PENALTY / 2)]
    assert [cid for cid, _ in hedged(close, DOCS.__getitem__, [], 4)] == [1, 2, 4, 3]
    clear = [(1, 1.0), (2, 0.95), (3, 0.90), (4, 0.90 - 2 * REPEATED_DOCUMENT_PENALTY)]
    assert [cid for cid, _ in hedged(clear, DOCS.__getitem__, [], 4)] == [1, 2, 3, 4]
    # Scores are kept, and places past the depth keep the fused order.
    assert dict(hedged(close, DOCS.__getitem__, [], 1)) == dict(close)
    assert [cid for cid, _ in hedged(close, DOCS.__getitem__, [], 1)] == [1, 2, 3, 4]


def test_each_rankings_first_two_stay_within_the_first_five():
    fused = [(cid, 1.0 - cid / 100) for cid in range(1, 10)]  # 1-3 from one document
    lexical = [(8, 12.0), (9, 11.0), (1, 3.0)]  # BM25's two best are fused last
    dense = [(1, 0.8), (2, 0.7)]
    order = [cid for cid, _ in hedged(fused, DOCS.__getitem__, [dense, lexical], 9)]
    assert set(order[:5]) >= {1, 2, 8, 9}
    assert order[:5] == [1, 2, 4, 8, 9]  # fused order among the first five; 3 is a's third
    assert order[5:] == [5, 6, 7, 3]
    # A leader the fused list lacks is ignored: the first five are still five.
    assert len(hedged(fused[:6], DOCS.__getitem__, [[(42, 1.0)], lexical], 6)[:5]) == 5
    assert hedged([], DOCS.__getitem__, [dense, lexical], 5) == []


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_mmr_drops_a_near_duplicate():
    vectors = _unit([[1, 0, 0], [0.999, 0.01, 0], [0, 1, 0], [0, 0, 1]])
    relevance = np.array([0.9, 0.89, 0.6, 0.5])
    assert maximal_marginal_relevance(relevance, vectors, 2, diversity=0.0) == [0, 1]
    picked = maximal_marginal_relevance(relevance, vectors, 2, diversity=0.5)
    assert picked == [0, 2]  # the duplicate of the best passage gives way


def test_mmr_keeps_all_candidates_and_handles_edges():
    vectors = _unit(np.eye(4))
    assert sorted(maximal_marginal_relevance(np.arange(4.0), vectors, 10, 0.3)) == [0, 1, 2, 3]
    assert maximal_marginal_relevance(np.array([]), np.zeros((0, 4)), 3, 0.3) == []
    assert maximal_marginal_relevance(np.ones(3), vectors[:3], 2, 0.3)[0] == 0  # equal scores
