"""Where ragqa's own CPU goes in one /v1/ask, the LLM taken out: CPU timers around each stage.

    python bench/profile_ask.py [--requests 200] [--mode default|rag|extractive] [--cprofile 30]

Starts bench/fixed_latency_llm.py (delay 0; it runs in its own process, so its CPU is not
counted), ingests samples/ragqa-docs into a temporary collection, builds the FastAPI app in
this process (``create_app``, the real embedding model of RAGQA_EMBEDDING_BACKEND) and sends
``--requests`` asks through it with httpx's ASGI transport, one at a time, after warm-up
asks. The steps that a server runs in worker threads run inline here, so that the CPU of this
process (``time.process_time``: every thread, torch's and ONNX Runtime's included) is
attributed to the stage that spent it. Each stage's timer includes the stages nested in it.
"other" is the rest of a request: HTTP, FastAPI, validation, JSON. ``--cprofile N`` also lists
the N functions with the most cumulative CPU (cProfile inflates Python-heavy code such as
transformers' forward; the stage timers are the numbers to quote); ``PROFILE_SORT=tottime`` sorts
that list by each function's own CPU instead.

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.llm.embedded import free_loopback_port  # noqa: E402
from bench._serve import (  # noqa: E402
    SAMPLE_QUESTIONS,
    ingest_samples,
    start_fixed_latency_llm,
    stop,
    wait_until_up,
)

QUESTIONS = SAMPLE_QUESTIONS

CPU: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(owner, name: str, stage: str) -> None:
    """Wrap ``owner.name`` so that its CPU time adds to ``stage``."""
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_wrapper(*args, **kwargs):
            started = time.process_time()
            try:
                return await original(*args, **kwargs)
            finally:  # an await lets other tasks run: with one request at a time, there are none
                CPU[stage] += time.process_time() - started
                CALLS[stage] += 1

        setattr(owner, name, async_wrapper)
        return

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        started = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            CPU[stage] += time.process_time() - started
            CALLS[stage] += 1

    setattr(owner, name, wrapper)


def instrument() -> None:
    import app.core.embeddings as embeddings
    import app.rag.packing as packing
    import app.rag.pipeline as pipeline
    from app.core.lexical import LexicalIndex
    from app.core.store import CollectionIndex
    from app.llm.client import LLMClient
    from app.rag.evidence import Evidence
    from app.rag.grounding import Grounder
    from app.rag.packing import ContextPacker
    from app.rag.retrieval import Retriever

    async def inline(function, *args, **kwargs):
        return function(*args, **kwargs)

    # One request at a time: the worker-thread steps run inline, in this thread.
    pipeline.run_in_threadpool = inline  # type: ignore[assignment]
    timed(pipeline.AskPipeline, "run", "ask pipeline (all)")
    timed(Retriever, "run", "retrieve (all)")
    for cls in {o for o in vars(embeddings).values() if isinstance(o, type)}:
        if (
            cls.__module__ == embeddings.__name__
            and hasattr(cls, "embed_query")
            and hasattr(cls, "embed_documents")
        ):
            if cls.__name__ in {"Embedder", "LazyEmbeddingModel"}:
                continue
            timed(cls, "embed_query", "embed: questions")
            timed(cls, "embed_documents", "embed: sentences and answers")
    timed(LexicalIndex, "search", "retrieve: bm25")
    timed(CollectionIndex, "search", "retrieve: faiss")
    timed(ContextPacker, "pack", "pack (all)")
    timed(pipeline, "render_messages", "pack: render prompts")
    timed(packing, "to_openai_messages", "pack: to_openai_messages")
    timed(ContextPacker, "measure", "pack: measure tokens")
    timed(Grounder, "run", "ground (all)")
    timed(Grounder, "quote", "ground: quote")
    timed(Evidence, "build", "ground: evidence (split, embed, terms)")
    timed(LLMClient, "chat", "llm client: chat")
    timed(LLMClient, "count_tokens", "pack: llm count_tokens")
    timed(LLMClient, "count_prompt_tokens", "pack: llm count_prompt_tokens")


async def ask_many(app, questions: list[str], mode: str) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ragqa", timeout=120) as client:
        for question in questions:
            body = {"question": question, "collection": "bench", "max_tokens": 16}
            if mode != "default":
                body["mode"] = mode
            response = await client.post("/v1/ask", json=body)
            if response.status_code != 200:
                raise SystemExit(f"/v1/ask answered {response.status_code}: {response.text[:500]}")
    return len(questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--mode", default="default", help="rag, extractive, or default (the service's)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also list the top N functions")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ragqa-bench-profile-"))
    llm_port = free_loopback_port()
    llm = start_fixed_latency_llm(llm_port, 0, work / "llm.log")
    try:
        os.environ.update(
            {
                "RAGQA_INDEX_DIR": str(work / "indexes"),
                "RAGQA_LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
                "RAGQA_LLM_MODEL": "fixed-latency",
            }
        )
        ingest_samples("bench")
        wait_until_up(f"http://127.0.0.1:{llm_port}/v1/models", llm)

        from app.api.main import create_app
        from app.api.services import Services
        from app.core.config import Settings

        instrument()
        settings = Settings()
        services = Services.build(settings)
        app = create_app(settings, services)
        app.state.services = services  # the ASGI transport runs no lifespan
        # Distinct questions, as in bench/concurrency.py: ragqa keeps recent question vectors.
        questions = [f"{QUESTIONS[i % len(QUESTIONS)][:-1]}, case {i}?" for i in range(args.requests)]
        profiler = cProfile.Profile(time.process_time) if args.cprofile else None

        async def run() -> float:
            await ask_many(app, [f"{q} (warm-up)" for q in QUESTIONS * 3], args.mode)  # loads the collection
            CPU.clear()
            CALLS.clear()
            started = time.process_time()
            if profiler:
                profiler.enable()
            await ask_many(app, questions, args.mode)
            if profiler:
                profiler.disable()
            return time.process_time() - started

        cpu_s = asyncio.run(run())
        embedder = services.embedder
        backend = getattr(getattr(embedder, "model", embedder), "backend", "torch")
    finally:
        stop(llm)

    n = len(questions)
    stages = {stage: round(1000 * seconds / n, 2) for stage, seconds in sorted(CPU.items())}
    stages["other (HTTP, FastAPI, JSON)"] = round(1000 * (cpu_s - CPU["ask pipeline (all)"]) / n, 2)
    result = {
        "bench": "profile_ask",
        "requests": n,
        "mode": args.mode,
        "resolved_mode": settings.resolved_default_mode if args.mode == "default" else args.mode,
        "embedding_backend": backend,
        "cpu_ms_per_ask": round(1000 * cpu_s / n, 2),
        "stages_cpu_ms_per_ask": stages,
        "calls_per_ask": {stage: round(count / n, 2) for stage, count in sorted(CALLS.items())},
        "machine": {"cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result))
    print()
    print(f"CPU per /v1/ask: {result['cpu_ms_per_ask']} ms ({backend}, mode {result['resolved_mode']})")
    for stage, ms in stages.items():
        print(f"  {stage:42} {ms:8.2f} ms  {result['calls_per_ask'].get(stage, '')}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(args.cprofile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
