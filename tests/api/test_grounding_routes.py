"""The grounding stage through /v1/ask: citations, quote/refuse/flag, extractive mode, streamed
replacement and the question's language (fake models; the real ones: tests/test_grounding_end_to_end.py)."""

from __future__ import annotations

import pytest

from app.rag.language import REFUSALS, Language
from tests.api.test_routes_fast import index_dir, make_client, sse_events  # noqa: F401
from tests.fakes import FakeChatLLM

QUESTION = "Does ragqa need a GPU?"


def check_citations(body: dict) -> None:
    texts = {s["id"]: s["text"] for s in body["sources"]}
    for c in body["citations"]:
        assert texts[c["id"]][c["sentence_start"] : c["sentence_end"]] == c["sentence"]
        assert body["answer"][c["answer_start"] : c["answer_end"]].strip()
        assert 0.0 <= c["support"] <= 1.0


def test_extractive_quotes_evidence_verbatim_without_the_llm(index_dir):  # noqa: F811
    llm = FakeChatLLM()
    with make_client(index_dir, llm) as client:
        body = client.post("/v1/ask", json={"question": QUESTION, "mode": "extractive"}).json()
    assert llm.calls == []
    assert body["mode"] == "extractive" and body["answer_source"] == "quoted" and body["grounded"]
    assert 1 <= len(body["citations"]) <= 2
    check_citations(body)
    assert body["answer"] == " ".join(c["sentence"] for c in body["citations"])


def test_default_mode_auto_is_extractive_for_the_bundled_model(index_dir):  # noqa: F811
    with make_client(index_dir, FakeChatLLM(), llm_model="smollm2-135m-instruct") as client:
        assert client.post("/v1/ask", json={"question": QUESTION}).json()["mode"] == "extractive"
    with make_client(index_dir, FakeChatLLM(), default_mode="rag", llm_model="smollm2-135m-instruct") as c:
        assert c.post("/v1/ask", json={"question": QUESTION}).json()["mode"] == "rag"
    with make_client(index_dir, FakeChatLLM()) as client:  # any other model: rag
        assert client.post("/v1/ask", json={"question": QUESTION}).json()["mode"] == "rag"


@pytest.mark.parametrize("policy", ["flag", "quote", "refuse"])
def test_unsupported_generated_answer_follows_the_setting(index_dir, policy):  # noqa: F811
    invented = "Penguins invented the telescope in 1802."
    with make_client(index_dir, FakeChatLLM([invented]), unsupported_answer=policy) as client:
        body = client.post("/v1/ask", json={"question": QUESTION, "mode": "rag"}).json()
    assert not body["grounded"] or body["answer_source"] == "quoted"
    if policy == "flag":
        assert body["answer"] == invented and body["answer_source"] == "generated"
        assert body["unsupported"] == [{"start": 0, "end": len(invented)}]
        assert body["supported_share"] == 0.0
    elif policy == "quote":
        assert body["answer_source"] == "quoted" and body["generated_answer"] == invented
        check_citations(body)
    else:
        assert body["refused"] and body["answer_source"] == "refused"
        assert body["answer"] == REFUSALS[Language.en]


def test_streamed_replacement_comes_in_the_done_event(index_dir):  # noqa: F811
    invented = "Penguins invented the telescope in 1802."
    with make_client(index_dir, FakeChatLLM([invented]), unsupported_answer="quote") as client:
        with client.stream(
            "POST", "/v1/ask", json={"question": QUESTION, "mode": "rag", "stream": True}
        ) as r:
            r.read()
    events = sse_events(r)
    tokens = "".join(d["text"] for name, d in events if name == "token")
    done = events[-1][1]
    assert events[-1][0] == "done" and tokens == invented == done["generated_answer"]
    assert done["answer_source"] == "quoted" and done["answer"] != tokens and done["citations"]


def test_korean_question_gets_a_korean_refusal(index_dir):  # noqa: F811
    with make_client(index_dir, FakeChatLLM(), refusal_min_score=1.0) as client:
        body = client.post("/v1/ask", json={"question": "ragqa는 GPU가 필요한가요?", "mode": "rag"}).json()
    assert body["refused"] and body["answer"] == REFUSALS[Language.ko] and body["language"] == "ko"


def test_english_answer_to_a_korean_question_is_replaced_by_a_quote(index_dir):  # noqa: F811
    with make_client(index_dir, FakeChatLLM(["The service is started with ragqa serve."])) as client:
        body = client.post(
            "/v1/ask", json={"question": "ragqa는 한국어 문서를 어떻게 검색하나요?", "mode": "rag"}
        ).json()
    assert body["answer_source"] == "quoted" and body["language"] == "ko"
    assert any("\uac00" <= ch <= "\ud7a3" for ch in body["answer"])


def test_extractive_with_cot_is_refused(index_dir):  # noqa: F811
    with make_client(index_dir, FakeChatLLM()) as client:
        r = client.post("/v1/ask", json={"question": QUESTION, "mode": "extractive", "strategy": "cot"})
    assert r.status_code == 422 and "cot" in r.text


def test_chat_completion_carries_citations(index_dir):  # noqa: F811
    with make_client(index_dir, FakeChatLLM(), llm_model="smollm2-135m-instruct") as client:
        body = client.post(
            "/v1/chat/completions",
            json={
                "model": "ragqa/default",
                "mode": "extractive",
                "messages": [{"role": "user", "content": QUESTION}],
            },
        ).json()
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "ragqa/default",
                "mode": "extractive",
                "stream": True,
                "messages": [{"role": "user", "content": QUESTION}],
            },
        ) as r:
            r.read()
    assert body["ragqa"]["answer_source"] == "quoted" and body["citations"]
    texts = {s["id"]: s["text"] for s in body["sources"]}
    for c in body["citations"]:
        assert texts[c["id"]][c["sentence_start"] : c["sentence_end"]] == c["sentence"]
    chunks = [d for _, d in sse_events(r) if isinstance(d, dict)]
    last = next(c for c in chunks if c.get("ragqa", {}).get("answer_source"))
    assert last["citations"] == body["citations"]


def test_citation_offsets_point_into_the_passage_not_its_header(tmp_path):
    from app.core.store import TITLE_SECTION_HEADER, IndexStore
    from ingest.run import IngestJob
    from ingest.splitting import TextSplitter
    from tests.fakes import FakeEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    filler = " ".join(f"Line {i} covers the installer." for i in range(30))
    (docs / "hardware.md").write_text(
        f"# Hardware guide\n\n{filler}\n\n## Graphics cards\n\nDoes ragqa need a GPU? No, ragqa does not need a GPU: it runs on the CPU.\n"
    )
    headed = tmp_path / "indexes"
    IngestJob(IndexStore(headed), FakeEmbedder(), TextSplitter(300, 50, TITLE_SECTION_HEADER)).run(
        docs, "default"
    )
    with make_client(headed, FakeChatLLM()) as client:
        body = client.post("/v1/ask", json={"question": QUESTION, "mode": "extractive"}).json()
    assert body["citations"]
    check_citations(body)
    sources = {s["id"]: s for s in body["sources"]}
    best = sources[body["citations"][0]["id"]]  # the answering sentence's chunk
    assert (best["title"], best["section"]) == ("Hardware guide", "Graphics cards")
    assert "No, ragqa does not need a GPU" in body["citations"][0]["sentence"]
    for cited in (sources[c["id"]] for c in body["citations"]):
        assert cited["title"] == "Hardware guide" and "Hardware guide" not in cited["text"]
