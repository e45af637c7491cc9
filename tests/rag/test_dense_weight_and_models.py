"""Per-collection embedding models in one service, per-model thresholds and the dense-weight
rule (issue 19 §3), with fake models."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.services import Services
from app.core.config import DEFAULT_EMBEDDING_MODEL, Settings
from app.core.embeddings import (
    DEFAULT_PROFILE,
    MODEL_PROFILES,
    USE_MULTILINGUAL,
    EmbedderRegistry,
    covers,
    thresholds_for,
)
from app.core.store import CollectionCache, IndexStore
from app.rag.grounding import Grounder
from app.rag.retrieval import RetrievalMode, RetrievalOptions, Retriever, effective_dense_weight
from app.wiring import build_ingest_job
from tests.fakes import FakeChatLLM, fake_settings
from tests.ingest.test_model_choice import KOREAN_DOCS, SAMPLES, NamedFake, registry

KO_QUESTION = "한국의 우체통은 무슨 색인가요?"


def test_dense_weight_is_zero_where_the_model_does_not_cover_the_language():
    assert effective_dense_weight(0.3, DEFAULT_EMBEDDING_MODEL, "What is ragqa?", "en") == 0.3
    assert effective_dense_weight(0.3, DEFAULT_EMBEDDING_MODEL, KO_QUESTION, "en") == 0.0
    assert effective_dense_weight(0.3, DEFAULT_EMBEDDING_MODEL, "What is kimchi?", "ko") == 0.0
    assert effective_dense_weight(0.3, USE_MULTILINGUAL, KO_QUESTION, "ko") == 0.3
    # A model ragqa knows nothing of is taken at its word.
    assert effective_dense_weight(0.3, "my/own-model", KO_QUESTION, "ko") == 0.3
    # Unset: the model's own weight, still none where the model does not cover the language.
    usem3 = MODEL_PROFILES[USE_MULTILINGUAL].hybrid_dense_weight
    assert effective_dense_weight(None, USE_MULTILINGUAL, KO_QUESTION, "ko") == usem3
    assert effective_dense_weight(None, DEFAULT_EMBEDDING_MODEL, KO_QUESTION, "en") == 0.0
    assert effective_dense_weight(None, "my/own-model", "What is ragqa?", "en") == DEFAULT_PROFILE.hybrid_dense_weight
    assert not covers("all-MiniLM-L6-v2", "ko") and covers("usem3", "ko")


def test_english_model_on_korean_text_ranks_as_bm25_alone(tmp_path):
    reg = registry()
    job = build_ingest_job(fake_settings(tmp_path), IndexStore(tmp_path), reg.default, reg)
    job.run(KOREAN_DOCS, "ko")  # fake_settings names the model: it stays the default one
    assert IndexStore(tmp_path).read_manifest("ko").embedding.model == DEFAULT_EMBEDDING_MODEL
    retriever = Retriever(CollectionCache(IndexStore(tmp_path)), reg)
    hybrid = retriever.run(KO_QUESTION, "ko", 5, RetrievalOptions(RetrievalMode.hybrid, dense_weight=0.5))
    bm25 = retriever.run(KO_QUESTION, "ko", 5, RetrievalOptions(RetrievalMode.bm25))
    assert [p.id for p in hybrid] == [p.id for p in bm25]
    assert hybrid[0].doc == "mailbox.txt"


def test_thresholds_are_the_models_unless_set(tmp_path):
    names = ("refusal_min_score", "min_relevance", "support_min_score", "quote_min_score")

    def values(t):
        return tuple(getattr(t, n) for n in names)

    unset = fake_settings(tmp_path)
    for model in (USE_MULTILINGUAL, DEFAULT_EMBEDDING_MODEL):
        assert values(thresholds_for(unset, model)) == values(MODEL_PROFILES[model])
    assert values(thresholds_for(unset, "usem3")) == values(MODEL_PROFILES[USE_MULTILINGUAL])
    assert thresholds_for(unset, "my/own-model").refusal_min_score == DEFAULT_PROFILE.refusal_min_score
    given = fake_settings(
        tmp_path, refusal_min_score=0.9, min_relevance=0.8, support_min_score=0.7, quote_min_score=0.6
    )
    for model in ("usem3", DEFAULT_EMBEDDING_MODEL):
        assert values(thresholds_for(given, model)) == (0.9, 0.8, 0.7, 0.6)
    usem3 = MODEL_PROFILES[USE_MULTILINGUAL]
    grounder = Grounder.from_settings(unset, NamedFake(USE_MULTILINGUAL))
    assert grounder.refusal_min_score == usem3.refusal_min_score
    assert grounder.quote_min_score == usem3.quote_min_score
    assert grounder.min_relevance == usem3.min_relevance


@pytest.fixture
def two_model_app(tmp_path):
    """An English and a Korean collection, of two models, served by one app."""
    reg = registry()
    settings = Settings(
        _env_file=None, index_dir=tmp_path, llm_base_url="http://fake-llm.invalid/v1", llm_model="fake-llm",
        refusal_min_score=-1.0, min_relevance=-1.0,
    )
    auto = build_ingest_job(settings, IndexStore(tmp_path), reg.default, reg)
    assert auto.choose_model  # RAGQA_EMBEDDING_MODEL unset
    auto.run(SAMPLES, "english")
    auto.run(KOREAN_DOCS, "korean")
    services = Services.build(settings, llm=FakeChatLLM(), embedders=reg)
    with TestClient(create_app(services=services)) as client:
        yield client, reg


def test_one_app_serves_collections_of_two_models(two_model_app):
    client, reg = two_model_app
    models = {c["name"]: c["embedding_model"] for c in client.get("/v1/collections").json()["collections"]}
    assert models == {"english": DEFAULT_EMBEDDING_MODEL, "korean": USE_MULTILINGUAL}
    ko = client.post("/v1/retrieve", json={"question": KO_QUESTION, "collection": "korean", "top_k": 3})
    assert ko.status_code == 200, ko.text
    assert ko.json()["passages"][0]["doc"] == "mailbox.txt"
    en = client.post("/v1/retrieve", json={"question": "How do I ingest documents?", "collection": "english"})
    assert en.status_code == 200, en.text
    assert set(reg.loaded) == {DEFAULT_EMBEDDING_MODEL, USE_MULTILINGUAL}
    ask = client.post("/v1/ask", json={"question": KO_QUESTION, "collection": "korean", "mode": "extractive"})
    assert ask.status_code == 200, ask.text
    assert any(s["doc"] == "mailbox.txt" for s in ask.json()["sources"])


def test_the_fusion_weighs_dense_scores_by_the_collections_model_unless_set(tmp_path, monkeypatch):
    import app.rag.retrieval as retrieval

    weights: list[float] = []
    fuse = retrieval.convex_combination

    def recording(dense, lexical, dense_weight):
        weights.append(dense_weight)
        return fuse(dense, lexical, dense_weight)

    monkeypatch.setattr(retrieval, "convex_combination", recording)
    reg = registry()
    settings = Settings(_env_file=None, index_dir=tmp_path, llm_base_url="http://fake-llm.invalid/v1")
    auto = build_ingest_job(settings, IndexStore(tmp_path), reg.default, reg)
    auto.run(SAMPLES, "english")
    auto.run(KOREAN_DOCS, "korean")
    options = RetrievalOptions.from_settings(settings)
    assert options.dense_weight is None  # RAGQA_HYBRID_DENSE_WEIGHT unset
    retriever = Retriever(CollectionCache(IndexStore(tmp_path)), reg, options)
    retriever.run("How do I ingest documents?", "english", 3)
    retriever.run(KO_QUESTION, "korean", 3)
    english, korean = MODEL_PROFILES[DEFAULT_EMBEDDING_MODEL], MODEL_PROFILES[USE_MULTILINGUAL]
    assert english.hybrid_dense_weight != korean.hybrid_dense_weight
    assert weights == [english.hybrid_dense_weight, korean.hybrid_dense_weight]
    given = Settings(_env_file=None, index_dir=tmp_path, hybrid_dense_weight=0.2)
    fixed = Retriever(CollectionCache(IndexStore(tmp_path)), reg, RetrievalOptions.from_settings(given))
    fixed.run("How do I ingest documents?", "english", 3)
    fixed.run(KO_QUESTION, "korean", 3)
    assert weights[2:] == [0.2, 0.2]


def test_registry_holds_at_most_two_models():
    made: list[str] = []

    def load(name: str) -> NamedFake:
        made.append(name)
        return NamedFake(name)

    reg = EmbedderRegistry(NamedFake("a"), load, max_models=2)
    reg.get("b")
    reg.get("c")
    assert reg.loaded == ["a", "c"]  # the service's own model stays
    reg.get("c")
    assert made == ["b", "c"]


def test_a_model_that_cannot_load_is_a_clear_error(tmp_path):
    reg = registry()
    build_ingest_job(fake_settings(tmp_path), IndexStore(tmp_path), reg.default, reg).run(SAMPLES, "docs")
    lone = Retriever(CollectionCache(IndexStore(tmp_path)), NamedFake("other/model"))
    from app.rag.retrieval import EmbeddingModelMismatch

    with pytest.raises(EmbeddingModelMismatch, match="cannot load"):
        lone.run("anything", "docs", 3)




def test_an_upload_that_creates_a_collection_picks_its_model(two_model_app):
    client, _ = two_model_app
    text = (KOREAN_DOCS / "kimchi.txt").read_bytes()
    response = client.post("/v1/collections/uploaded/documents", files=[("files", ("kimchi.txt", text))])
    assert response.status_code == 200, response.text
    models = {c["name"]: c["embedding_model"] for c in client.get("/v1/collections").json()["collections"]}
    assert models["uploaded"] == USE_MULTILINGUAL
    # Adding an English file later keeps the collection's model.
    more = client.post("/v1/collections/uploaded/documents", files=[("files", ("en.md", (SAMPLES / "overview.md").read_bytes()))])
    assert more.status_code == 200, more.text
    models = {c["name"]: c["embedding_model"] for c in client.get("/v1/collections").json()["collections"]}
    assert models["uploaded"] == USE_MULTILINGUAL


def test_a_collection_written_before_letter_counts_still_answers(tmp_path):
    from tests.ingest.test_model_choice import _strip_letter_counts

    reg = registry()
    build_ingest_job(fake_settings(tmp_path), IndexStore(tmp_path), reg.default, reg).run(KOREAN_DOCS, "ko")
    _strip_letter_counts(IndexStore(tmp_path), "ko")
    retriever = Retriever(CollectionCache(IndexStore(tmp_path)), reg)
    hybrid = retriever.run(KO_QUESTION, "ko", 5)  # the language comes from the chunks' text
    assert hybrid[0].doc == "mailbox.txt"
    assert retriever.language_of(retriever.collections.get("ko")) == "ko"
