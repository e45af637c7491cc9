"""Builds tests/data/tydiqa-ko from TyDi QA GoldP v1.1, Korean (see README.md).

    git -C MIRROR show HEAD:language_data/korean/korean_tydiqa_dev.json > /tmp/ko_dev.json
    git -C MIRROR show HEAD:language_data/korean/korean_tydiqa_train.json > /tmp/ko_train.json
    python tests/data/tydiqa-ko/make_set.py /tmp/ko_dev.json /tmp/ko_train.json

Every dev question is kept. One document per Wikipedia title (its gold passages, blank-line
separated, title on line 1); DISTRACTORS titles from the train split that the dev split lacks are
added as documents with no questions, so that retrieval has to pick among ~500 documents.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
DISTRACTORS = 160
SEED = 13


def by_title(path: str) -> dict[str, list[dict]]:
    titles: dict[str, list[dict]] = {}
    for article in json.loads(Path(path).read_text("utf-8"))["data"]:
        titles.setdefault(article["title"].strip(), []).extend(article["paragraphs"])
    return titles


def write_doc(folder: Path, name: str, title: str, paragraphs: list[dict]) -> str:
    contexts = list(dict.fromkeys(p["context"].strip() for p in paragraphs))
    text = title + "\n\n" + "\n\n".join(contexts) + "\n"
    (folder / name).write_text(text, encoding="utf-8")
    return text


def main(dev_path: str, train_path: str) -> None:
    dev, train = by_title(dev_path), by_title(train_path)
    docs = HERE / "docs"
    docs.mkdir(exist_ok=True)
    for old in docs.glob("*.txt"):
        old.unlink()
    questions = []
    for i, (title, paragraphs) in enumerate(sorted(dev.items()), start=1):
        name = f"ko-{i:04d}.txt"
        text = write_doc(docs, name, title, paragraphs)
        for p in paragraphs:
            for qa in p["qas"]:
                answers = list(dict.fromkeys(a["text"].strip() for a in qa["answers"] if a["text"].strip()))
                assert all(a in text for a in answers), qa["id"]
                questions.append(
                    {"id": qa["id"], "question": qa["question"].strip(), "answers": answers,
                     "doc": name, "title": title}
                )
    extra = sorted(t for t in train if t not in dev)
    random.Random(SEED).shuffle(extra)
    for j, title in enumerate(sorted(extra[:DISTRACTORS]), start=1):
        write_doc(docs, f"ko-x{j:04d}.txt", title, train[title])
    questions.sort(key=lambda q: q["id"])
    with (HERE / "questions.jsonl").open("w", encoding="utf-8") as out:
        for q in questions:
            out.write(json.dumps(q, ensure_ascii=False) + "\n")
    print(f"{len(dev)} dev documents + {min(DISTRACTORS, len(extra))} distractors, {len(questions)} questions")


if __name__ == "__main__":
    main(*sys.argv[1:3])
