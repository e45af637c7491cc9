"""Reading question files: the shared/eval format, relevant_docs lists and BEIR qrels."""

from __future__ import annotations

import json

import pytest

from app.evaluation.runner import EvalError, load_questions


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def test_squad_fields_and_answerable_default(tmp_path):
    path = tmp_path / "questions.jsonl"
    write_jsonl(
        path,
        [
            {"id": "a", "question": "Q1?", "answers": ["x"], "doc": "d1.txt"},
            {"id": "b", "question": "Q2?", "answers": [], "doc": "d2.txt", "answerable": False},
            {"id": "c", "question": "Q3?", "answers": [], "doc": "d3.txt"},
        ],
    )
    a, b, c = load_questions(path)
    assert (a.answerable, b.answerable, c.answerable) == (True, False, False)
    assert a.relevant_docs == {"d1.txt"} and a.relevance is None
    assert len(load_questions(path, limit=2)) == 2


def test_relevant_docs_list_wins_over_doc(tmp_path):
    path = tmp_path / "questions.jsonl"
    write_jsonl(path, [{"id": "a", "question": "Q?", "answers": ["x"], "doc": "d1.txt", "relevant_docs": ["d2.txt", "d3.txt"]}])
    (q,) = load_questions(path)
    assert q.relevance == {"d2.txt": 1.0, "d3.txt": 1.0}
    assert q.relevant_docs == {"d2.txt", "d3.txt"}


def test_qrels_beside_the_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    write_jsonl(path, [{"id": "q1", "question": "Q?", "answers": []}, {"id": "q2", "question": "R?"}])
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq1\td3\t1\n")
    q1, q2 = load_questions(path)
    assert q1.relevance == {"d1": 2.0, "d2": 0.0, "d3": 1.0}
    assert q1.relevant_docs == {"d1", "d3"}
    assert q2.relevance is None and q2.relevant_docs == set()


@pytest.mark.parametrize("content", ["", "not json\n", '{"question": "no id"}\n'])
def test_bad_files_are_refused(tmp_path, content):
    path = tmp_path / "questions.jsonl"
    path.write_text(content)
    with pytest.raises(EvalError):
        load_questions(path)


def test_missing_file(tmp_path):
    with pytest.raises(EvalError, match="not found"):
        load_questions(tmp_path / "nope.jsonl")


def test_sample_is_seeded_and_keeps_file_order(tmp_path):
    path = tmp_path / "questions.jsonl"
    write_jsonl(path, [{"id": str(i), "question": f"Q{i}?", "answers": ["x"]} for i in range(50)])
    first = [q.id for q in load_questions(path, sample=10, seed=7)]
    assert first == [q.id for q in load_questions(path, sample=10, seed=7)]
    assert first != [q.id for q in load_questions(path, sample=10, seed=8)]
    assert len(first) == 10 and first == sorted(first, key=int)
    assert len(load_questions(path, sample=500)) == 50
