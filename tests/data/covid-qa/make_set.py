"""Builds tests/data/covid-qa from deepset's COVID-QA annotations (see README.md).

    git -C MIRROR show HEAD:data/question-answering/200423_covidQA.json > /tmp/covidqa.json
    python tests/data/covid-qa/make_set.py /tmp/covidqa.json

PAPERS papers are drawn with a fixed seed, then PER_PAPER questions from each (fewer where a paper
has fewer), then more drawn from the remaining questions of those papers up to TOTAL. One document per paper: the annotated text as distributed (title on line 1). qrels.tsv
(BEIR style: query-id, corpus-id, score) marks each question's paper as relevant with score 1.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
PAPERS = 50
PER_PAPER = 5
TOTAL = 250
SEED = 13


def record(name: str, text: str, qa: dict) -> dict:
    answers = list(dict.fromkeys(a["text"].strip() for a in qa["answers"] if a["text"].strip()))
    assert all(a in text for a in answers), qa["id"]
    return {"id": f"covidqa-{qa['id']}", "question": qa["question"].strip(), "answers": answers,
            "doc": name, "title": text.splitlines()[0].strip()}


def main(path: str) -> None:
    papers = [p for article in json.loads(Path(path).read_text("utf-8"))["data"] for p in article["paragraphs"]]
    rng = random.Random(SEED)
    picked = sorted(rng.sample(range(len(papers)), PAPERS))
    docs = HERE / "docs"
    docs.mkdir(exist_ok=True)
    for old in docs.glob("*.txt"):
        old.unlink()
    questions, leftovers = [], []
    for n, i in enumerate(picked, start=1):
        paper = papers[i]
        name = f"paper-{n:03d}.txt"
        text = paper["context"].strip() + "\n"
        (docs / name).write_text(text, encoding="utf-8")
        qas = [qa for qa in paper["qas"] if not qa.get("is_impossible") and qa["answers"]]
        rng.shuffle(qas)
        leftovers += [(name, text, qa) for qa in qas[PER_PAPER:]]
        for qa in qas[:PER_PAPER]:
            questions.append(record(name, text, qa))
    rng.shuffle(leftovers)
    questions += [record(*x) for x in leftovers[: TOTAL - len(questions)]]
    questions.sort(key=lambda q: (q["doc"], int(q["id"].split("-")[1])))
    with (HERE / "questions.jsonl").open("w", encoding="utf-8") as out:
        for q in questions:
            out.write(json.dumps(q, ensure_ascii=False) + "\n")
    with (HERE / "qrels.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for q in questions:
            out.write(f"{q['id']}\t{q['doc']}\t1\n")
    print(f"{len(picked)} papers, {len(questions)} questions")


if __name__ == "__main__":
    main(sys.argv[1])
