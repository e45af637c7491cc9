"""The support check calibrated on one half of squad-v2.0-dev and measured on the other.

    python -m bench.grounding /work/reports/v20-gen.json --index-dir /work/indexes-eval \\
        --collection squad20 --out grounding.json   # and the curve, grounding.png

The report must come from ``ragqa eval --refusal-min-score -1`` (every question reached the
LLM), so each answer, its sources and its ``top_score`` are on record. Each answer is replayed
through ``app.rag.grounding.Grounder`` under a grid of (retrieval threshold, support threshold,
policy for unsupported answers, quote threshold), and extractive mode under each (retrieval
threshold, quote threshold). The
questions are split in two halves by article (sha1 of the doc name): the half A picks the
setting with the least confabulation whose false refusals stay at most 5 %, half B reports it.

Scores, over what a user reads (a quote for an unanswerable question counts as confabulation,
so does a flagged answer): contains-gold and false refusal on answerable questions,
confabulation on unanswerable ones. It also times the check: p50 wall and CPU ms of one
``Grounder.run`` with the sentence-vector cache cold and warm, and with the sentence vectors that
the collection stores (when the index has them: a collection written since they are stored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from app.core.embeddings import load_embedding_model
from app.core.store import IndexStore
from app.evaluation.metrics import contains_gold
from app.rag.grounding import Grounder, SentenceVectorCache, UnsupportedAnswer
from app.rag.retrieval import Passage

REFUSAL_THRESHOLDS = [-1.0, 0.2, 0.25, 0.3, 0.325, 0.35, 0.4, 0.45, 0.5]
SUPPORT_THRESHOLDS = [0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]
# The least cosine between the question and a quote's first sentence (-1: off).
QUOTE_THRESHOLDS = [-1.0, 0.3, 0.35, 0.4, 0.45, 0.5]
MAX_FALSE_REFUSAL = 0.05


def half_of(doc: str) -> str:
    return "A" if hashlib.sha1(doc.encode()).digest()[0] % 2 == 0 else "B"


def load_cases(report: Path, store: IndexStore, collection: str) -> list[dict]:
    """The report's answered questions with their passages, carrying the collection's stored
    sentence vectors where it has them."""
    index = store.load(collection)
    chunks, stored = index.chunks, index.sentences
    cases = []
    for r in json.loads(report.read_text("utf-8"))["questions"]:
        side = r.get("rag") or {}
        if side.get("error", "x") is not None:
            continue
        passages = [
            Passage(
                s["id"], s["doc"], chunks[s["id"]].text, s["score"], s["rank"],
                sentences=stored.of_chunk(s["id"]) if stored is not None else None,
            )
            for s in side["sources"]
        ]
        cases.append({**r, "answer": side["answer"], "top_score": side["top_score"], "passages": passages})
    return cases


def outcome(case: dict, grounding) -> dict:
    refused = grounding.refused
    return {
        "refused": refused,
        "gold": case["answerable"] and not refused and contains_gold(grounding.answer, case["answers"]),
    }


def score(outcomes: list[tuple[dict, dict]]) -> dict:
    answerable = [o for c, o in outcomes if c["answerable"]]
    unanswerable = [o for c, o in outcomes if not c["answerable"]]

    def rate(xs, key):
        return round(sum(o[key] for o in xs) / len(xs), 3) if xs else None

    return {
        "contains_gold": rate(answerable, "gold"),
        "false_refusal": rate(answerable, "refused"),
        "confabulation": round(1 - rate(unanswerable, "refused"), 3) if unanswerable else None,
    }


def sweep(cases: list[dict], grounders: dict) -> dict[str, list[tuple[dict, dict]]]:
    """Outcomes per setting name, over all cases. Each grounder runs once per case; the
    retrieval threshold only decides which of those answers become refusals."""
    results: dict[str, list] = {}
    for case in cases:
        refusal = None
        for name, (grounder, extractive) in grounders.items():
            if extractive:
                g = grounder.quote(case["question"], case["passages"])
            else:
                g = grounder.run(case["question"], case["passages"], case["answer"])
            for r in REFUSAL_THRESHOLDS:
                if case["top_score"] < r:
                    refusal = refusal or grounder.refusal(case["question"])
                    out = outcome(case, refusal)
                else:
                    out = outcome(case, g)
                results.setdefault(f"{name}@r={r}", []).append((case, out))
    return results


def timings(cases: list[dict], embedder) -> dict:
    """p50 of one check over 60 cases: sentences embedded with the cache cold, then warm; and,
    where the collection stores sentence vectors, read from them (a fresh grounder: cache cold)."""
    without = [{**c, "passages": [replace(p, sentences=None) for p in c["passages"]]} for c in cases[:60]]
    embedding = Grounder(embedder, on_unsupported=UnsupportedAnswer.flag)  # its cache: cold, then warm
    runs = [("cold", without, embedding), ("warm", without, embedding)]
    if any(p.sentences is not None for c in cases[:60] for p in c["passages"]):
        runs.append(("stored", cases[:60], Grounder(embedder, on_unsupported=UnsupportedAnswer.flag)))
    out = {}
    for label, runs_on, grounder in runs:
        wall, cpu = [], []
        for case in runs_on:
            started, cpu0 = time.perf_counter(), time.process_time()
            grounder.run(case["question"], case["passages"], case["answer"])
            wall.append(1000 * (time.perf_counter() - started))
            cpu.append(1000 * (time.process_time() - cpu0))
        out[label] = {"p50_ms": round(statistics.median(wall), 1), "p50_cpu_ms": round(statistics.median(cpu), 1)}
    return out


def plot(table: dict, path: Path) -> None:
    """Confabulation against false refusals on each half in extractive mode (the quote policy
    lies on the same points): one line per quote threshold, the retrieval threshold along it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, half in zip(axes, "AB"):
        for q in QUOTE_THRESHOLDS:
            points = [table[f"extractive@q={q}@r={r}"][half] for r in REFUSAL_THRESHOLDS]
            ax.plot(
                [100 * p["false_refusal"] for p in points],
                [100 * p["confabulation"] for p in points],
                marker="o", markersize=3,
                label=f"quote threshold {q}" if q > -1 else "no quote threshold",
            )
        ax.axvline(100 * MAX_FALSE_REFUSAL, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"squad-v2.0-dev half {half}")
        ax.set_xlabel("false refusals, % of answerable")
    axes[0].set_ylabel("confabulation, % of unanswerable")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--embedding-model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--timings-only", action="store_true", help="only time the check (seconds)")
    args = parser.parse_args()

    embedder = load_embedding_model(args.embedding_model)
    cases = load_cases(args.report, IndexStore(args.index_dir), args.collection)
    timing = timings(cases, embedder)
    if args.timings_only:
        print(json.dumps({"timings": timing}, indent=2))
        return
    # One cache of sentence vectors for every grounder: each sentence is embedded once (the
    # model itself keeps recent question vectors).
    shared = SentenceVectorCache(embedder)
    grounders = {}
    for q in QUOTE_THRESHOLDS:
        grounders[f"extractive@q={q}"] = (Grounder(shared, quote_min_score=q), True)
    for t in SUPPORT_THRESHOLDS:
        for policy in UnsupportedAnswer:
            # The quote threshold only acts where a quote is given.
            for q in QUOTE_THRESHOLDS if policy is UnsupportedAnswer.quote else [-1.0]:
                grounders[f"{policy.value}@s={t}@q={q}"] = (
                    Grounder(shared, on_unsupported=policy, support_min=t, quote_min_score=q),
                    False,
                )
    results = sweep(cases, grounders)
    table = {
        key: {half: score([(c, o) for c, o in outs if half_of(c["doc"]) == half]) for half in "AB"}
        for key, outs in results.items()
    }
    as_run = table["flag@s=0.6@q=-1.0@r=-1.0"]

    def best(*prefixes: str) -> str | None:
        """The least confabulation on half A within the false-refusal cap; None if no setting keeps it."""
        allowed = [k for k in table if k.startswith(prefixes)
                   and table[k]["A"]["false_refusal"] <= MAX_FALSE_REFUSAL + 1e-9]
        if not allowed:
            return None
        return min(allowed, key=lambda k: (table[k]["A"]["confabulation"], -table[k]["A"]["contains_gold"]))

    picks = {
        "generated, any policy": best("flag", "quote", "refuse"),
        "generated, quote": best("quote"),
        "generated, refuse": best("refuse"),
        "extractive": best("extractive"),
    }
    # A policy none of whose settings keeps false refusals within the cap is reported as such.
    chosen = {label: k for label, k in picks.items() if k is not None}
    for label in picks.keys() - chosen.keys():
        print(f"{label}: no setting keeps false refusals at most {MAX_FALSE_REFUSAL:.0%} on half A")
    report = {
        "report": str(args.report),
        "questions": len(cases),
        "halves": {h: sum(half_of(c["doc"]) == h for c in cases) for h in "AB"},
        "as_run": as_run,
        "chosen_on_A": {label: {"setting": k, **table[k]} for label, k in chosen.items()},
        "timings": timing,
        "table": table,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
        plot(table, args.out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    print(f"\n{'setting chosen on A':<34} {'B: gold':>8} {'false ref':>9} {'confab':>7}")
    for label, k in chosen.items():
        b = table[k]["B"]
        print(f"{label + ' ' + k:<34} {b['contains_gold']:>8} {b['false_refusal']:>9} {b['confabulation']:>7}")


if __name__ == "__main__":
    main()
