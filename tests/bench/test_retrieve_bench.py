"""The /v1/retrieve latency benchmark (bench/retrieve.py), at a small size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, SQUAD11, require_eval_data


@pytest.mark.slow
def test_retrieve_bench_smoke():
    require_eval_data()
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "retrieve.py"),
            "--sizes",
            "300",
            "--requests",
            "12",
            "--warmup",
            "2",
            "--docs",
            str(SQUAD11 / "docs"),
            "--max-docs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[0])
    assert report["retrieval_mode"] == "hybrid"  # the service's default, on both sides
    assert 0 < report["base_chunks"] < 300 and report["questions"] > 0
    (size,) = report["sizes"]
    assert size["chunks"] == 300 and size["requests_each"] == 12
    assert size["sentence_vectors"] > size["chunks"]  # copied with their chunks, several a chunk
    for side in (size["in_process"], size["http"], size["in_process_chunk_only"]):
        assert 0 < side["p50_ms"] <= side["p99_ms"]
    assert size["fewest_passages"] == report["top_k"] == 5
    # The real check: the service over HTTP ranks exactly the passages Retriever.run does.
    assert size["passage_id_mismatches"] == 0, size["mismatch_examples"]
    assert size["http_minus_in_process_p50_ms"] == pytest.approx(
        size["http"]["p50_ms"] - size["in_process"]["p50_ms"], abs=0.02
    )
    assert "| 300 |" in done.stdout
