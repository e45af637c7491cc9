from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import DEFAULT_EMBEDDING_MODEL, Settings


def test_defaults_work_offline_on_cpu(monkeypatch):
    for key in ("RAGQA_LLM_BASE_URL", "RAGQA_INDEX_DIR", "RAGQA_EMBEDDING_MODEL"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings(_env_file=None)
    assert settings.llm_base_url is None  # the embedded LLM
    assert settings.embedding_model == DEFAULT_EMBEDDING_MODEL
    assert settings.index_dir == Path("indexes")
    assert settings.llm_context_window == 4096


def test_env_prefix_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGQA_TOP_K", "7")
    monkeypatch.setenv("RAGQA_LLM_BASE_URL", "http://vllm:8000/v1")
    env_file = tmp_path / ".env"
    env_file.write_text("RAGQA_CHUNK_SIZE=600\nRAGQA_CHUNK_OVERLAP=60\n")
    settings = Settings(_env_file=env_file)
    assert settings.top_k == 7
    assert str(settings.llm_base_url) == "http://vllm:8000/v1"
    assert (settings.chunk_size, settings.chunk_overlap) == (600, 60)


def test_invalid_values_are_rejected(monkeypatch):
    monkeypatch.setenv("RAGQA_CHUNK_SIZE", "200")
    monkeypatch.setenv("RAGQA_CHUNK_OVERLAP", "300")
    with pytest.raises(ValidationError, match="chunk_overlap"):
        Settings(_env_file=None)


def test_chunk_header_choices_are_the_stores_rules():
    import typing

    from app.core.store import HEADER_RULES

    choices = typing.get_args(Settings.model_fields["chunk_header"].annotation)
    assert set(choices) == {"none", *HEADER_RULES}
    assert Settings(_env_file=None).chunk_header_rule is None
    assert Settings(_env_file=None, chunk_header="title+section").chunk_header_rule == "title+section"
    with pytest.raises(ValueError, match="chunk_header"):
        Settings(_env_file=None, chunk_header="title")
