"""Prompting strategies measured over HTTP: strategy x prompt mode, closed book, refusal curve.

Drives POST /v1/ask of a running `ragqa serve` (--url), or starts one itself over --index-dir.
Prints one JSON object, then a table. Self-contained: SQuAD EM/F1 are computed here.

  # strategy x prompt-mode table on every 15th question of squad-v1.1-dev (20 questions)
  python bench/prompting.py ../shared/eval/squad-v1.1-dev/questions.jsonl \
      --index-dir /tmp/idx --collection squad11 --every 15 --limit 20
  # refusal curve: retrieval-score threshold against confabulation and F1 (squad-v2.0-dev)
  python bench/prompting.py ../shared/eval/squad-v2.0-dev/questions.jsonl \
      --index-dir /tmp/idx --collection squad20 --every 5 --calibrate --png docs/refusal-curve.png
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import socket
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

import httpx

REFUSAL = "The answer is not in the documents."
_REFUSAL = re.compile(
    r"not in the (documents|passages)|(documents|passages) do not (contain|say|mention)"
    r"|no information (about|on) this|\bI do(n't| not) know\b",
    re.IGNORECASE,
)
# The default first, then one change at a time, so an interrupted run is still informative.
COMBINATIONS = [
    ("direct", "one_shot"), ("closed_book", "zero_shot"), ("cot", "zero_shot"), ("step_back", "one_shot"),
    ("direct", "zero_shot"), ("direct", "few_shot"), ("cot", "one_shot"), ("step_back", "zero_shot"),
    ("cot", "few_shot"), ("step_back", "few_shot"),
]


# --- SQuAD scoring (the official normalisation: lower case, no punctuation or articles) ---

def normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def score(answer: str, refused: bool, question: dict) -> dict:
    """EM/F1 against the gold answers; an unanswerable question is right only when refused."""
    prediction = "" if refused else re.sub(r"\[\d+\]", " ", answer).strip()
    golds = question["answers"] or [""]
    return {
        "em": max(float(normalize(prediction) == normalize(g)) for g in golds),
        "f1": max(f1(prediction, g) for g in golds),
        "contains": bool(question["answers"]) and not refused
        and any(g.lower() in answer.lower() for g in question["answers"]),
    }


# --- the service ---

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    ragqa = Path(sys.executable).with_name("ragqa")
    process = subprocess.Popen(
        [str(ragqa), "serve", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "RAGQA_INDEX_DIR": str(index_dir), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit("ragqa serve exited early")
        time.sleep(0.5)
    process.kill()
    raise SystemExit("ragqa serve did not become ready")


def ask(client: httpx.Client, body: dict) -> dict:
    response = client.post("/v1/ask", json=body)
    if response.status_code != 200:
        raise SystemExit(f"/v1/ask answered {response.status_code}: {response.text}")
    return response.json()


def run_combination(client, questions, collection, strategy, mode, extra, log=None) -> dict:
    rows = []
    for q in questions:
        body = {"question": q["question"], "collection": collection, **extra}
        if strategy == "closed_book":
            body |= {"mode": "closed_book", "prompt_mode": "zero_shot"}
        else:
            body |= {"strategy": strategy, "prompt_mode": mode}
        reply = ask(client, body)
        print(f"    {strategy}/{mode} {q['id']}: {reply['timings_ms']['total']:.0f} ms", file=sys.stderr)
        top = max((s["score"] for s in reply["sources"]), default=None)
        rows.append({
            "id": q["id"], "answerable": bool(q["answers"]), "answer": reply["answer"],
            "refused": reply["refused"], "top_score": top,
            "ms": reply["timings_ms"]["total"], **score(reply["answer"], reply["refused"], q),
            "completion_tokens": reply["usage"]["completion_tokens"],
            "reasoning": reply.get("reasoning"), "step_back_question": reply.get("step_back_question"),
        })
        if log:  # partial results survive an interrupted run
            log.write(json.dumps({"strategy": strategy, "prompt_mode": mode, **rows[-1]}) + "\n")
            log.flush()
    return {"strategy": strategy, "prompt_mode": mode, **summarize(rows), "rows": rows}


def summarize(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    pct = lambda xs, key: round(100 * statistics.fmean(r[key] for r in xs), 1) if xs else None  # noqa: E731
    return {
        "n": len(rows),
        "em": pct(rows, "em"),
        "f1": pct(rows, "f1"),
        "f1_answerable": pct(answerable, "f1"),
        "contains_gold": sum(r["contains"] for r in rows),
        "refused_answerable": pct(answerable, "refused"),
        "confabulation": round(100 - pct(unanswerable, "refused"), 1) if unanswerable else None,
        "mean_ms": round(statistics.fmean(r["ms"] for r in rows)),
    }


def refusal_curve(rows: list[dict], questions: dict[str, dict], thresholds: list[float]) -> list[dict]:
    """Re-score the same answers as if ragqa had refused below each retrieval-score threshold."""
    curve = []
    for t in thresholds:
        rescored = []
        for r in rows:
            refused = r["refused"] or r["top_score"] is None or r["top_score"] < t
            rescored.append({**r, "refused": refused, **score(r["answer"], refused, questions[r["id"]])})
        s = summarize(rescored)
        curve.append({"threshold": t, "f1_answerable": s["f1_answerable"], "f1": s["f1"],
                      "confabulation": s["confabulation"], "refused_answerable": s["refused_answerable"]})
    return curve


def retrieval_curve(client, questions, collection, top_k, thresholds) -> list[dict]:
    """Refusing below t, without any LLM: the share of answerable questions refused bounds the
    F1 cost (each costs at most 100 points / n), and the share of unanswerable ones still
    answered bounds confabulation (reached when the model itself never refuses)."""
    tops = []
    for q in questions:
        response = client.post("/v1/retrieve", json={"question": q["question"], "collection": collection, "top_k": top_k})
        response.raise_for_status()
        tops.append((bool(q["answers"]), response.json()["passages"][0]["score"]))
    answerable = [t for a, t in tops if a]
    unanswerable = [t for a, t in tops if not a]
    return [{
        "threshold": t,
        "answerable_refused": round(100 * sum(x < t for x in answerable) / len(answerable), 1),
        "unanswerable_refused": round(100 * sum(x < t for x in unanswerable) / len(unanswerable), 1),
        "n_answerable": len(answerable), "n_unanswerable": len(unanswerable),
    } for t in thresholds]


def choose_threshold(curve: list[dict], max_f1_cost: float) -> dict:
    """Least confabulation whose answerable F1 is within max_f1_cost points of no threshold."""
    floor = curve[0]["f1_answerable"] - max_f1_cost
    allowed = [c for c in curve if c["f1_answerable"] >= floor]
    return min(allowed, key=lambda c: (c["confabulation"], -c["f1_answerable"]))


def plot(curve: list[dict], chosen: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [c["threshold"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [c["confabulation"] for c in curve], marker="o", label="confabulation (unanswerable, %)")
    ax.plot(xs, [c["f1_answerable"] for c in curve], marker="s", label="F1 (answerable)")
    ax.axvline(chosen["threshold"], color="grey", linestyle="--", label=f"default {chosen['threshold']}")
    ax.set_xlabel("refusal_min_score (best retrieval cosine)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def choose_by_bound(retrieval: list[dict], max_f1_cost: float) -> dict:
    """The highest threshold that refuses at most max_f1_cost % of answerable questions:
    its F1 cost is at most max_f1_cost points whatever the model (each costs <= 100/n)."""
    return max((c for c in retrieval if c["answerable_refused"] <= max_f1_cost), key=lambda c: c["threshold"])


def plot_retrieval(retrieval: list[dict], chosen: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [c["threshold"] for c in retrieval]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [100 - c["unanswerable_refused"] for c in retrieval], marker="o",
            label="unanswerable still answered, % (confabulation bound)")
    ax.plot(xs, [c["answerable_refused"] for c in retrieval], marker="s",
            label="answerable refused, % (F1-cost bound, points)")
    ax.axvline(chosen["threshold"], color="grey", linestyle="--", label=f"default {chosen['threshold']}")
    ax.set_xlabel("RAGQA_REFUSAL_MIN_SCORE (best retrieval cosine)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_rows_table(path: Path) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        groups.setdefault((row["strategy"], row["prompt_mode"]), []).append(row)
    results = [{"strategy": k[0], "prompt_mode": k[1], **summarize(v)} for k, v in groups.items()]
    print(json.dumps({"rows": str(path), "results": results}))
    print_table(results)


def print_table(results: list[dict]) -> None:
    print(f"\n{'strategy':<12}{'prompt_mode':<12}{'n':>4}{'EM':>7}{'F1':>7}{'gold in':>9}"
          f"{'refused(ans)%':>15}{'confab%':>9}{'mean ms':>9}")
    for r in results:
        print(f"{r['strategy']:<12}{r['prompt_mode']:<12}{r['n']:>4}{r['em']:>7}{r['f1']:>7}"
              f"{r['contains_gold']:>9}{str(r['refused_answerable']):>15}{str(r['confabulation']):>9}"
              f"{r['mean_ms']:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", type=Path)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--url", help="a running ragqa serve; else one is started over --index-dir")
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--every", type=int, default=15, help="take every Nth question")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="strategy:mode pairs, e.g. direct:one_shot closed_book:zero_shot")
    parser.add_argument("--exemplar-selection", choices=["fixed", "similarity"])
    parser.add_argument("--refusal-min-score", type=float, help="RAGQA_REFUSAL_MIN_SCORE of the started server")
    parser.add_argument("--top-k", type=int, help="passages per question; default the server's")
    parser.add_argument("--max-tokens", type=int, help="answer (and cot reasoning) cap; default the server's")
    parser.add_argument("--calibrate", action="store_true", help="refusal curve instead of the table")
    parser.add_argument("--max-f1-cost", type=float, default=5.0)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--retrieval-curve", action="store_true",
                        help="also: the retrieval-score curve over ALL questions of the file (no LLM)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--from-rows", type=Path, help="only summarise a (partial) .rows.jsonl of an earlier run")
    args = parser.parse_args()
    if args.from_rows:
        print_rows_table(args.from_rows)
        return

    lines = [json.loads(x) for x in args.questions.read_text("utf-8").splitlines() if x.strip()]
    questions = lines[:: args.every][: args.limit]
    combos = [tuple(c.split(":")) for c in args.only] if args.only else COMBINATIONS
    if args.calibrate and not args.only:
        combos = [("direct", "one_shot")]

    env = {"RAGQA_LLM_TIMEOUT_S": "900"}  # shared CPUs: a slow answer is data, not an error
    if args.calibrate:
        env["RAGQA_REFUSAL_MIN_SCORE"] = "-1"  # the curve is applied afterwards, to the same answers
    elif args.refusal_min_score is not None:
        env["RAGQA_REFUSAL_MIN_SCORE"] = str(args.refusal_min_score)
    if args.exemplar_selection:
        env["RAGQA_EXEMPLAR_SELECTION"] = args.exemplar_selection
    process = None
    if args.url:
        url = args.url
    elif args.index_dir:
        process, url = start_server(args.index_dir, env)
    else:
        raise SystemExit("give --url or --index-dir")

    started = time.time()
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            results = []
            thresholds = [round(0.05 * i, 2) for i in range(0, 13)]
            if args.retrieval_curve:
                retrieval = retrieval_curve(client, lines, args.collection, args.top_k or 5, thresholds)
                print(json.dumps({"retrieval_curve": retrieval}), file=sys.stderr)
            partial = args.out.with_suffix(".rows.jsonl").open("w") if args.out else None
            for strategy, mode in combos:
                extra = {"max_tokens": args.max_tokens} if args.max_tokens else {}
                if args.top_k and strategy != "closed_book":
                    extra["top_k"] = args.top_k
                results.append(run_combination(client, questions, args.collection, strategy, mode, extra, partial))
                print(f"  {strategy}/{mode} done ({time.time() - started:.0f} s)", file=sys.stderr)
    finally:
        if process:
            process.terminate()
            process.wait(30)

    report = {"questions": str(args.questions), "n": len(questions), "every": args.every,
              "top_k": args.top_k, "max_tokens": args.max_tokens,
              "collection": args.collection, "env": env, "seconds": round(time.time() - started),
              "results": results}
    if args.calibrate:
        by_id = {q["id"]: q for q in questions}
        curve = refusal_curve(results[0]["rows"], by_id, thresholds)
        chosen = choose_threshold(curve, args.max_f1_cost)
        report |= {"curve": curve, "chosen": chosen}
    if args.retrieval_curve:
        report["retrieval_curve"] = retrieval
        report["chosen_by_bound"] = choose_by_bound(retrieval, args.max_f1_cost)
        if args.png:
            plot_retrieval(retrieval, report["chosen_by_bound"], args.png.with_name("refusal-retrieval-curve.png"))
        if args.png:
            plot(curve, chosen, args.png)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "results"}
                     | {"results": [{k: v for k, v in r.items() if k != "rows"} for r in results]}))

    print_table(results)
    if args.calibrate:
        print(f"\n{'threshold':>10}{'F1(ans)':>9}{'confab%':>9}{'refused(ans)%':>15}")
        for c in report["curve"]:
            mark = "  <- default" if c is report["chosen"] else ""
            print(f"{c['threshold']:>10}{c['f1_answerable']:>9}{c['confabulation']:>9}"
                  f"{c['refused_answerable']:>15}{mark}")


    if args.retrieval_curve:
        print(f"\nretrieval only, all {len(lines)} questions: refused below the threshold")
        print(f"{'threshold':>10}{'answerable %':>14}{'unanswerable %':>16}")
        for c in report["retrieval_curve"]:
            print(f"{c['threshold']:>10}{c['answerable_refused']:>14}{c['unanswerable_refused']:>16}")


if __name__ == "__main__":
    main()
