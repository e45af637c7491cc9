"""Writing an evaluation report: the JSON file, a markdown table, and a PNG."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _fmt(value, percent: bool = True) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" if percent else f"{value:,.0f}"


ANSWER_ROWS = [
    ("EM (answerable)", "em"),
    ("F1 (answerable)", "f1"),
    ("answer contains gold (answerable)", "contains_gold"),
    ("false refusal (answerable)", "false_refusal_rate"),
    ("correct refusal (unanswerable)", "correct_refusal_rate"),
    ("confabulation (unanswerable)", "confabulation_rate"),
]


def markdown(report: dict) -> str:
    """Two tables: retrieval, then answers (RAG, closed-book, difference), all in percent."""
    run, agg = report["run"], report["aggregate"]
    retrieval = agg["retrieval"]
    config = run["config"]
    lines = [
        f"**{Path(run['questions_file']).parent.name or run['questions_file']}**, "
        f"{agg['retrieval']['questions']} questions, collection `{config['collection']}`, "
        f"prompt `{config['prompt_mode']}`, strategy `{config.get('strategy', 'direct')}`, "
        f"top_k {config['top_k']}, "
        f"LLM {', '.join(run['llm_models']) or '?'}, embeddings {run['embedding_model']}",
        "",
        "| retrieval (%) | hit@1 | hit@5 | hit@10 | MRR@10 | passage hit@5 | nDCG@10 |",
        "|---|---|---|---|---|---|---|",
        "| doc level | "
        + " | ".join(
            _fmt(v)
            for v in (
                retrieval["hit_at"]["1"],
                retrieval["hit_at"]["5"],
                retrieval["hit_at"]["10"],
                retrieval["mrr_at_10"],
                retrieval["passage_hit_at_5"],
                retrieval["ndcg_at_10"],
            )
        )
        + " |",
        "",
    ]
    sides = [s for s in ("rag", "closed_book") if s in agg]
    if not sides:  # --retrieval-only
        return "\n".join(lines).rstrip()
    header = ["answers (%)", *("RAG" if s == "rag" else "closed-book" for s in sides)]
    if "rag_minus_closed_book" in agg:
        header.append("RAG − closed-book")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, key in ANSWER_ROWS:
        cells = [_fmt(agg[s][key]) for s in sides]
        if "rag_minus_closed_book" in agg:
            diff = agg["rag_minus_closed_book"][key]
            cells.append("–" if diff is None else f"{100 * diff:+.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| cost | " + " | ".join(header[1 : 1 + len(sides)]) + " |", "|" + "---|" * (1 + len(sides))]
    for stage in ("retrieve", "generate", "total"):
        for q in ("p50", "p95"):
            cells = [_fmt(agg[s]["latency_ms"][stage][q], percent=False) for s in sides]
            lines.append(f"| {stage} {q} (ms) | " + " | ".join(cells) + " |")
    for kind in ("prompt", "completion"):
        cells = [_fmt(agg[s]["tokens"][kind], percent=False) for s in sides]
        lines.append(f"| {kind} tokens (total) | " + " | ".join(cells) + " |")
    errors = {s: agg[s]["errors"] for s in sides} | {"retrieval": retrieval["errors"]}
    if any(errors.values()):
        lines += ["", f"errors: {errors}"]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """hit@k for k = 1..10, and RAG vs closed-book EM / F1 / contains-gold side by side."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and in CI
    import matplotlib.pyplot as plt

    agg = report["aggregate"]
    config = report["run"]["config"]
    sides = [s for s in ("rag", "closed_book") if s in agg]
    fig, axes = plt.subplots(1, 2 if sides else 1, figsize=(11 if sides else 5.5, 4.2), squeeze=False)
    left = axes[0][0]

    hit_at = agg["retrieval"]["hit_at"]
    ks = sorted(int(k) for k in hit_at)
    values = [100 * (hit_at[str(k)] or 0) for k in ks]
    left.plot(ks, values, marker="o")
    left.set(xlabel="k (passages)", ylabel="gold doc in top k (%)", title="Retrieval", ylim=(0, 101))
    left.set_xticks(ks)
    left.grid(alpha=0.3)

    if sides:
        _plot_answers(axes[0][1], agg, sides, config["prompt_mode"])
    fig.suptitle(Path(report["run"]["questions_file"]).parent.name, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_answers(right, agg: dict, sides: list[str], prompt_mode: str) -> None:
    metrics_shown = [("EM", "em"), ("F1", "f1"), ("contains gold", "contains_gold")]
    width = 0.8 / len(sides)
    for i, side in enumerate(sides):
        xs = [j + (i - (len(sides) - 1) / 2) * width for j in range(len(metrics_shown))]
        heights = [100 * (agg[side][key] or 0) for _, key in metrics_shown]
        bars = right.bar(xs, heights, width, label="RAG" if side == "rag" else "closed-book")
        right.bar_label(bars, fmt="%.1f", fontsize=8)
    right.set_xticks(range(len(metrics_shown)), [label for label, _ in metrics_shown])
    right.set(ylabel="% of answerable questions", title=f"Answers ({prompt_mode})")
    right.legend()
    right.grid(axis="y", alpha=0.3)


def restricted(report: dict, ids: set[str]) -> dict:
    """The report over only the questions in ``ids``, its aggregates recomputed."""
    from app.evaluation.runner import aggregate

    records = [r for r in report["questions"] if r["id"] in ids]
    return {**report, "aggregate": aggregate(records), "questions": records}


def comparison(reports: list[dict], same_questions: bool = False) -> str:
    """One row per report (prompt mode x strategy), closed-book beside; in percent.

    ``same_questions`` scores every report on the questions they all share, so that a full run
    and a sampled one compare on equal terms."""
    if same_questions and reports:
        shared = set.intersection(*({r["id"] for r in rep["questions"]} for rep in reports))
        reports = [restricted(rep, shared) for rep in reports]
    header = (
        "| set | prompt | strategy | n | EM | F1 | contains gold | false refusal | confabulation "
        "| closed-book EM | closed-book F1 | closed-book contains gold | total p50 (ms) |"
    )
    lines = [header, "|" + "---|" * 13]
    for rep in reports:
        run, agg = rep["run"], rep["aggregate"]
        config, rag, closed = run["config"], agg.get("rag", {}), agg.get("closed_book", {})
        selection = (run.get("settings") or {}).get("exemplar_selection")
        prompt = config["prompt_mode"] + (f" ({selection})" if selection == "similarity" else "")
        cells = [
            Path(run["questions_file"]).parent.name,
            prompt,
            config.get("strategy", "direct"),
            str(rag.get("questions", len(rep["questions"]))),
            *(_fmt(rag.get(k)) for k in ("em", "f1", "contains_gold", "false_refusal_rate", "confabulation_rate")),
            *(_fmt(closed.get(k)) for k in ("em", "f1", "contains_gold")),
            _fmt(rag.get("latency_ms", {}).get("total", {}).get("p50"), percent=False),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
