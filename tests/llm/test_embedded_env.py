"""The embedded llama.cpp server gets ragqa's environment minus its own settings' names."""

from __future__ import annotations

import httpx
import pytest

from app.llm.embedded import EmbeddedLLMServer, free_loopback_port


def test_variables_named_like_the_servers_settings_are_not_passed_on(monkeypatch):
    for name, value in {"PORT": "9", "host": "0.0.0.0", "N_CTX": "16", "RAGQA_PORT": "8000"}.items():
        monkeypatch.setenv(name, value)
    env = EmbeddedLLMServer.environment()
    assert not {"PORT", "host", "N_CTX"} & env.keys()
    assert env["RAGQA_PORT"] == "8000"  # everything else reaches the server unchanged


@pytest.mark.slow
def test_a_port_set_for_ragqa_does_not_move_the_embedded_server(monkeypatch):
    taken = free_loopback_port()
    monkeypatch.setenv("PORT", str(taken))  # as `make run PORT=...` exports it
    server = EmbeddedLLMServer(alias="smollm2-135m-instruct", n_ctx=512, start_timeout_s=120)
    try:
        server.start()
        assert server.port != taken
        assert httpx.get(f"{server.base_url}/models", timeout=10).status_code == 200
    finally:
        server.stop()
