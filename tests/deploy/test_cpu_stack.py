"""docker-compose.yml + compose.cpu.yml, up for real under podman-compose: ingest, ask, faults, stop.

The tests share one stack and run in file order; the last one stops it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from app.llm.embedded import free_loopback_port
from tests.deploy.conftest import IMAGE, http, leftovers, sh, wait_for, world_readable_dir

pytestmark = [pytest.mark.slow, pytest.mark.deploy]

NEW_DOC = "The lighthouse on Pharos island was painted green by keeper Mirela Tosk in 1911.\n"


def summary_of(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_shot_ingest_completed_and_a_second_run_embeds_nothing(stack):
    ingest = stack.container("ingest")
    sh("podman", "wait", ingest, timeout=120)  # the api may be ready while it is still exiting
    state = sh("podman", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", ingest).stdout.split()
    assert state == ["exited", "0"], sh("podman", "logs", ingest, check=False).stderr
    again = stack.run("run", "--rm", "ingest", "ragqa", "ingest", "/data/docs", "--collection", "default", "--json")
    summary = summary_of(again)
    assert summary["embedded"] == 0 and summary["added"] == 0 and summary["unchanged"] == 5, summary


def test_api_is_ready_and_answers_with_sources_through_the_vllm_service(stack):
    status, ready = http("GET", stack.url + "/readyz")
    assert status == 200 and ready["llm"] == "reachable" and ready["collections"] == ["default"], ready
    if "llm_base_url" in ready:
        assert ready["llm_base_url"] == "http://vllm:8000/v1"
    # Short, so that a loaded 2-core machine answers well within the api's 120 s LLM timeout.
    question = {"question": "Does ragqa need a GPU?", "top_k": 2, "max_tokens": 24}
    status, body = http("POST", stack.url + "/v1/ask", question, timeout=180)
    assert status == 200, body
    assert body["answer"].strip() and body["sources"], body
    assert body["model"] == "smollm2-135m-instruct"  # the model that really answered


def test_every_container_runs_as_a_non_root_user_and_healthchecks_pass(stack):
    for service in ("vllm", "api", "ingest"):
        user = sh("podman", "inspect", "--format", "{{.Config.User}}", stack.container(service)).stdout.strip()
        assert user not in ("", "0", "root"), (service, user)
    for service in ("vllm", "api"):
        assert sh("podman", "exec", stack.container(service), "id", "-u").stdout.strip() == "10001"
        # No systemd here: podman schedules no healthcheck, so run each by hand.
        health = sh("podman", "healthcheck", "run", stack.container(service), check=False)
        assert health.returncode == 0, (service, health.stdout, health.stderr)


def test_a_new_document_is_seen_by_the_running_api_and_survives_an_api_restart(stack):
    (stack.docs / "pharos.txt").write_text(NEW_DOC)
    (stack.docs / "pharos.txt").chmod(0o644)
    summary = summary_of(stack.run("run", "--rm", "ingest", "ragqa", "ingest", "/data/docs", "--json"))
    assert summary["added"] == 1 and summary["unchanged"] == 5, summary
    question = {"question": "Who painted the Pharos lighthouse green?", "top_k": 3}

    def top_doc():
        status, body = http("POST", stack.url + "/v1/retrieve", question)
        return status == 200 and body["passages"][0]["doc"] == "pharos.txt"

    wait_for(top_doc, 60, "the running api to serve the new document (hot reload)")
    api = stack.container("api")
    sh("podman", "restart", "-t", "10", api)
    wait_for(lambda: http("GET", stack.url + "/readyz", timeout=5)[0] == 200, 180, "/readyz after restart")
    assert top_doc()


def test_llm_down_is_a_503_on_readyz_while_retrieve_serves_and_it_recovers(stack):
    vllm = stack.container("vllm")
    sh("podman", "stop", "-t", "10", vllm)
    try:
        status, ready = wait_for(
            lambda: (r := http("GET", stack.url + "/readyz", timeout=30))[0] == 503 and r, 60, "/readyz 503"
        )
        assert ready["llm"] == "unreachable"
        assert any("LLM" in p and "not reachable" in p for p in ready["problems"]), ready
        status, body = http("POST", stack.url + "/v1/retrieve", {"question": "Does ragqa need a GPU?"})
        assert status == 200 and body["passages"]
        question = {"question": "Does ragqa need a GPU?", "max_tokens": 8}
        # Generating needs the LLM: a 503 that names it. Extractive answers (the default with the
        # bundled model) quote the documents and need no LLM, so they go on.
        status, body = http("POST", stack.url + "/v1/ask", {**question, "mode": "rag"})
        assert status == 503 and "LLM" in body["detail"], body
        status, body = http("POST", stack.url + "/v1/ask", {**question, "mode": "extractive"})
        assert status == 200 and body["answer_source"] == "quoted", body
    finally:
        sh("podman", "start", vllm)
    wait_for(lambda: http("GET", stack.url + "/readyz", timeout=5)[0] == 200, 180, "/readyz 200 again")


def test_the_image_alone_empty_docs_unwritable_index_and_a_wrong_llm_url(engine):
    empty = world_readable_dir("ragqa-deploy-empty-")
    root_owned = world_readable_dir("ragqa-deploy-rootix-")  # 0755 root: uid 10001 cannot write
    try:
        run = ["podman", "run", "--rm", "-v", f"{empty}:/data/docs:ro"]
        result = sh(*run, IMAGE, "ragqa", "ingest", "/data/docs", "--json", check=False)
        assert result.returncode == 0 and "nothing ingested" in result.stderr, result.stderr
        assert "no document in /data/docs" in summary_of(result)["reason"]

        (empty / "a.txt").write_text(NEW_DOC)
        (empty / "a.txt").chmod(0o644)
        result = sh(
            *run,
            "-v",
            f"{root_owned}:/srv/ragqa/indexes",
            IMAGE,
            "ragqa",
            "ingest",
            "/data/docs",
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "cannot write the index folder /srv/ragqa/indexes as uid 10001" in result.stderr
        assert "chown -R 10001" in result.stderr and "Traceback" not in result.stderr

        port = str(free_loopback_port())
        name = "ragqa-deploy-test-wrong-url"
        sh("podman", "rm", "-f", name, check=False)
        sh(
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "-p",
            f"127.0.0.1:{port}:8000",
            "-v",
            f"{root_owned}:/srv/ragqa/indexes",
            "-e",
            "RAGQA_LLM_BASE_URL=http://127.0.0.1:9/v1",
            IMAGE,
        )
        try:
            url = f"http://127.0.0.1:{port}/readyz"
            status, ready = wait_for(lambda: (r := http("GET", url, timeout=10))[0] == 503 and r, 120, "/readyz 503")
            assert ready["llm"] == "unreachable"
            assert any("/srv/ragqa/indexes is not writable" in p for p in ready["problems"]), ready
            assert http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200
        finally:
            sh("podman", "rm", "-f", "-t", "5", name, check=False)
    finally:
        shutil.rmtree(empty, ignore_errors=True)
        shutil.rmtree(root_owned, ignore_errors=True)


def test_the_stack_stops_within_10_s_and_leaves_nothing_behind(stack):
    names = leftovers()
    assert len(names) == 3, names
    started = time.monotonic()
    # All at once, as `docker compose stop` does (podman-compose stops them one after another).
    sh("podman", "stop", "-t", "10", *names, timeout=120)
    seconds = time.monotonic() - started
    print(f"\nstack stopped in {seconds:.1f} s", flush=True)
    stack.run("down", "-v", timeout=120)
    assert leftovers() == []
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "/opt/venv/bin/ragqa serve" not in procs and "--model_alias smollm2-135m-instruct --n_ctx" not in procs
    # Every container stops on SIGTERM: podman's SIGKILL comes at 10 s.
    assert seconds < 10, f"the stack took {seconds:.1f} s to stop"
