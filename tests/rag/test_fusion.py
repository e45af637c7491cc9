"""Reciprocal rank fusion and maximal marginal relevance on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest

from app.rag.retrieval import RRF_K, maximal_marginal_relevance, reciprocal_rank_fusion


def test_rrf_scores_are_summed_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]]))
    assert fused[1] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert fused[3] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert fused[4] == pytest.approx(1 / (RRF_K + 3))
    assert set(fused) == {1, 2, 3, 4}


def test_rrf_orders_by_agreement():
    # 7 is second in both lists, 1 and 9 are first in one and absent from the other.
    order = [item for item, _ in reciprocal_rank_fusion([[1, 7, 2], [9, 7, 3]])]
    assert order[0] == 7
    assert set(order[1:3]) == {1, 9}


def test_rrf_weights_favour_one_ranking():
    dense, lexical = [1, 2, 3], [3, 2, 1]
    assert reciprocal_rank_fusion([dense, lexical], [0.9, 0.1])[0][0] == 1
    assert reciprocal_rank_fusion([dense, lexical], [0.1, 0.9])[0][0] == 3
    # A zero weight leaves the other ranking's order intact.
    assert [i for i, _ in reciprocal_rank_fusion([dense, lexical], [1.0, 0.0])] == dense


def test_rrf_needs_one_weight_per_ranking():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1], [2]], [1.0])


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
