"""`ragqa eval` end to end on real SQuAD questions, with the embedded LLM, as a user runs it."""

from __future__ import annotations

import json
import os
import statistics
import subprocess

import httpx
import pytest

from tests.conftest import RAGQA, SQUAD11, read_questions

pytestmark = pytest.mark.slow

LIMIT = 10


def ragqa_eval(
    *args: str, collection: str = "squad", env=None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """`ragqa eval` on squad-v1.1's questions, as a user types it."""
    command = [str(RAGQA), "eval", str(SQUAD11 / "questions.jsonl"), "--collection", collection, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def run_eval(index_dir, out, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAGQA_INDEX_DIR": str(index_dir)}
    env.pop("RAGQA_LLM_BASE_URL", None)  # in-process: the eval starts the embedded LLM itself
    return ragqa_eval("--limit", str(LIMIT), "--out", str(out), *args, env=env, timeout=1800)


def dead_llm_env(index_dir) -> dict[str, str]:
    """For runs that must fail before any LLM call: nothing listens on port 9."""
    return {**os.environ, "RAGQA_INDEX_DIR": str(index_dir), "RAGQA_LLM_BASE_URL": "http://127.0.0.1:9/v1"}


def mean(values):
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def report(squad_index, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "report.json"
    done = run_eval(squad_index, out, "--closed-book", "--mode", "rag")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), out, done.stdout


def test_report_has_one_record_per_question(report):
    body, _, _ = report
    expected = [q["id"] for q in read_questions(SQUAD11 / "questions.jsonl")[:LIMIT]]
    assert [r["id"] for r in body["questions"]] == expected
    for record in body["questions"]:
        assert record["retrieval"]["error"] is None
        retrieved = record["retrieval"]["retrieved"]
        assert [p["rank"] for p in retrieved] == list(range(1, 11))
        # (scores are cosines; the default hybrid retrieval ranks by fused rank, not by score)
        for side in ("rag", "closed_book"):
            reply = record[side]
            assert reply["error"] is None, reply["error"]
            assert isinstance(reply["answer"], str)
            assert 0 <= reply["f1"] <= 1 and reply["em"] in (0.0, 1.0)
            assert reply["em"] <= reply["f1"]
            assert reply["completion_tokens"] > 0
        assert record["rag"]["sources"], "RAG answers were given passages"
        assert record["closed_book"]["sources"] == [], "closed-book answers got no passages"
        # a closed-book prompt holds only the question: far shorter than one with passages
        assert record["closed_book"]["prompt_tokens"] < record["rag"]["prompt_tokens"]


def test_aggregates_equal_the_values_recomputed_from_the_records(report):
    body, _, _ = report
    records, agg = body["questions"], body["aggregate"]
    ranks = [r["retrieval"]["first_relevant_rank"] for r in records]
    for k in (1, 5, 10):
        assert agg["retrieval"]["hit_at"][str(k)] == pytest.approx(
            mean([rank is not None and rank <= k for rank in ranks])
        )
    assert agg["retrieval"]["mrr_at_10"] == pytest.approx(mean([1 / r if r else 0 for r in ranks]))
    assert agg["retrieval"]["passage_hit_at_5"] == pytest.approx(
        mean([r["retrieval"]["passage_hit_at_5"] for r in records])
    )
    assert agg["retrieval"]["ndcg_at_10"] is None  # SQuAD gives no relevance lists
    for side in ("rag", "closed_book"):
        assert agg[side]["questions"] == LIMIT and agg[side]["errors"] == 0
        for key in ("em", "f1", "contains_gold"):
            assert agg[side][key] == pytest.approx(mean([r[side][key] for r in records]))
        assert agg[side]["false_refusal_rate"] == pytest.approx(mean([r[side]["refused"] for r in records]))
        assert agg[side]["unanswerable"] == 0 and agg[side]["correct_refusal_rate"] is None
        totals = [r[side]["timings_ms"]["total"] for r in records]
        assert agg[side]["latency_ms"]["total"]["p50"] == pytest.approx(statistics.median(totals))
        assert agg[side]["tokens"]["completion"] == sum(r[side]["completion_tokens"] for r in records)
    for key, diff in agg["rag_minus_closed_book"].items():
        if diff is not None:
            assert diff == pytest.approx(agg["rag"][key] - agg["closed_book"][key])


def test_report_records_how_to_reproduce_it(report):
    run = report[0]["run"]
    assert run["temperature"] == 0.0
    assert run["llm_models"] == ["smollm2-135m-instruct"]
    assert run["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(run["index_manifest_sha256"]) == 64 and len(run["questions_sha256"]) == 64
    assert run["git"]["commit"] and len(run["git"]["commit"]) == 40
    assert run["config"]["prompt_mode"] == "one_shot" and run["config"]["top_k"] == 5
    assert run["settings"]["chunk_size"] == 1000 and "llm_api_key" not in run["settings"]


def test_markdown_table_and_png(report):
    _, out, stdout = report
    assert "| EM (answerable) |" in stdout and "RAG − closed-book" in stdout
    assert "| doc level |" in stdout
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_http_backend_retrieves_what_the_in_process_run_did(report, squad_server, tmp_path):
    out = tmp_path / "http.json"
    done = ragqa_eval("--limit", str(LIMIT), "--out", str(out), "--url", squad_server.url, "--retrieval-only")
    assert done.returncode == 0, done.stderr[-3000:]
    over_http = json.loads(out.read_text())
    in_process = report[0]
    assert over_http["run"]["backend"].startswith("http")
    for a, b in zip(over_http["questions"], in_process["questions"]):
        assert [p["id"] for p in a["retrieval"]["retrieved"]] == [
            p["id"] for p in b["retrieval"]["retrieved"]
        ]
    assert over_http["aggregate"]["retrieval"] == in_process["aggregate"]["retrieval"]
    assert "rag" not in over_http["aggregate"]


def test_closed_book_over_http_sends_no_passages(squad_server):
    body = {
        "question": "Who were the Normans?",
        "collection": "squad",
        "mode": "closed_book",
        "max_tokens": 16,
    }
    response = httpx.post(f"{squad_server.url}/v1/ask", json=body, timeout=300)
    assert response.status_code == 200, response.text
    assert response.json()["sources"] == [] and response.json()["usage"]["completion_tokens"] > 0


def test_unknown_collection_is_a_clear_error(squad_index, tmp_path):
    done = ragqa_eval(
        "--retrieval-only",
        "--out",
        str(tmp_path / "r.json"),
        collection="nope",
        env=dead_llm_env(squad_index),
    )
    assert done.returncode == 2
    assert "nope" in done.stderr and not (tmp_path / "r.json").exists()


def test_answers_carry_the_top_score_the_refusal_threshold_compares(report):
    body, _, _ = report
    threshold = body["run"]["settings"]["refusal_min_score"]
    for record in body["questions"]:
        rag = record["rag"]
        # the best relevance of everything retrieved, of which the cited sources are a part
        assert -1 <= rag["top_score"] <= 1
        assert all(s["relevance"] >= s["score"] for s in rag["sources"])
        assert rag["top_score"] >= max(s["relevance"] for s in rag["sources"]) - 1e-6
        if rag["top_score"] < threshold:  # refused by ragqa, without a generation
            assert rag["refused"] and rag["completion_tokens"] == 0
        assert record["closed_book"]["top_score"] is None


def test_refusal_curve_replays_the_report(report, tmp_path):
    body, out, _ = report
    png = tmp_path / "curve.png"
    done = subprocess.run(
        [str(RAGQA), "refusal-curve", str(out), "--out", str(png)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[0])
    curve = result["curve"]
    # the first point is the report as it was run, and no threshold below it is replayed
    assert curve[0]["threshold"] == body["run"]["settings"]["refusal_min_score"]
    assert curve[0]["f1"] == pytest.approx(body["aggregate"]["rag"]["f1"])
    assert all(c["threshold"] > curve[0]["threshold"] for c in curve[1:])
    # squad-v1.1 is all answerable: a stricter threshold can only refuse more of them
    refused = [c["false_refusal_rate"] for c in curve]
    assert refused == sorted(refused) and refused[-1] > refused[0]
    # without unanswerable questions there is no confabulation to trade F1 against
    assert result["chosen"] is None and "no threshold chosen" in done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_strategy_over_http_reaches_the_server(squad_server, tmp_path):
    out = tmp_path / "step_back.json"
    done = ragqa_eval(
        "--limit",
        "2",
        "--out",
        str(out),
        "--url",
        squad_server.url,
        "--strategy",
        "step_back",
        "--max-tokens",
        "24",
        "--mode",
        "rag",
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    body = json.loads(out.read_text())
    assert body["run"]["config"]["strategy"] == "step_back"
    for record in body["questions"]:
        assert record["rag"]["error"] is None
        assert record["rag"]["step_back_question"], "step_back writes a general question first"
        assert record["rag"]["timings_ms"]["step_back"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "ponder"], "'ponder' is not one of"),
        (["--refusal-min-score", "0.3", "--url", "http://127.0.0.1:9"], "in-process"),
        (["--refusal-min-score", "2"], "Invalid value for '--refusal-min-score'"),
    ],
)
def test_bad_eval_options_are_clear_errors(squad_index, tmp_path, args, message):
    done = ragqa_eval("--out", str(tmp_path / "r.json"), *args, env=dead_llm_env(squad_index), timeout=300)
    assert done.returncode == 2
    assert message in done.stderr and not (tmp_path / "r.json").exists()
