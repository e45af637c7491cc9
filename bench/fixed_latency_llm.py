"""An OpenAI-compatible chat server that answers every completion after a fixed delay.

    python bench/fixed_latency_llm.py --port 8100 [--delay-ms 200]

It stands in for an LLM whose cost is pure latency, so a benchmark measures what ragqa adds
around it: a service that holds one request at a time shows up as throughput far below
the server's own. Concurrent requests wait concurrently (asyncio.sleep), as on vLLM.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from fastapi import FastAPI
from pydantic import BaseModel

MODEL = "fixed-latency"
ANSWER = "A fixed answer."


class ChatRequest(BaseModel):
    model: str = MODEL
    messages: list[dict]
    max_tokens: int | None = None


def create_app(delay_s: float) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest) -> dict:
        await asyncio.sleep(delay_s)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.messages)
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}}
            ],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": 4, "total_tokens": prompt_chars // 4 + 4},
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    args = parser.parse_args()
    uvicorn.run(create_app(args.delay_ms / 1000), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
