"""The refusal threshold, calibrated on an eval report: ``ragqa refusal-curve REPORT.json``.

ragqa refuses without asking the model when the best retrieved relevance (``top_score``)
is below ``RAGQA_REFUSAL_MIN_SCORE``; otherwise the model answers and may refuse by itself. A
report run with the threshold off (``ragqa eval --refusal-min-score -1``) holds every model
answer and its ``top_score``, so any threshold can be replayed on it exactly: below ``t`` the
answer becomes the refusal, above it the model's own answer (and own refusal) stands. The
replayed records are scored by the same aggregate as the report itself.
"""

from __future__ import annotations

from pathlib import Path

from app.evaluation import metrics
from app.evaluation.runner import aggregate_answers
from app.rag.prompts import REFUSAL

# 0.00, 0.025, ..., 0.80; below 0 no MiniLM top score falls in practice.
DEFAULT_THRESHOLDS = [round(0.025 * i, 3) for i in range(33)]
OFF = -1.0


class CalibrationError(ValueError):
    """The report cannot be replayed: no RAG answers, or they lack ``top_score``."""


def run_threshold(report: dict) -> float | None:
    """The refusal threshold the report's answers were produced under (None: unknown, --url)."""
    settings = report["run"].get("settings") or {}
    return settings.get("refusal_min_score")


def replay(record: dict, threshold: float) -> dict:
    """The record's RAG side as if ragqa had refused below ``threshold``."""
    side = record["rag"]
    if side["top_score"] is None or side["top_score"] >= threshold:
        return side
    golds = record["answers"] if record["answerable"] else [""]
    return {
        **side,
        "answer": REFUSAL,
        "refused": True,
        "em": metrics.max_over_golds(metrics.exact_match, "", golds),
        "f1": metrics.max_over_golds(metrics.token_f1, "", golds),
        "contains_gold": False,
    }


def refusal_curve(report: dict, thresholds: list[float] | None = None) -> list[dict]:
    """Confabulation, correct refusal, false refusal and F1 (answerable) per threshold.

    The first point is the report as run (``threshold`` = its own); thresholds below it are left
    out, since the answers they would need were never generated."""
    records = [r for r in report["questions"] if r.get("rag", {}).get("error", "x") is None]
    if not records:
        raise CalibrationError("the report holds no RAG answers")
    if any(r["rag"].get("top_score") is None for r in records):
        raise CalibrationError("the report's answers carry no top_score: rerun ragqa eval")
    floor = run_threshold(report)
    floor = OFF if floor is None else floor
    grid = [floor] + [t for t in (thresholds or DEFAULT_THRESHOLDS) if t > floor]
    curve = []
    for t in grid:
        replayed = [{**r, "rag": replay(r, t)} for r in records]
        agg = aggregate_answers(replayed, "rag")
        curve.append(
            {
                "threshold": t,
                "f1": agg["f1"],
                "em": agg["em"],
                "contains_gold": agg["contains_gold"],
                "false_refusal_rate": agg["false_refusal_rate"],
                "correct_refusal_rate": agg["correct_refusal_rate"],
                "confabulation_rate": agg["confabulation_rate"],
                # Answered without a generation: what the threshold saves.
                "refused_without_llm": sum(r["rag"]["top_score"] < t for r in records) / len(records),
            }
        )
    return curve


def choose_threshold(curve: list[dict], max_f1_cost: float = 0.05, any_model: bool = True) -> dict:
    """Least confabulation whose answerable F1 stays within ``max_f1_cost`` (a fraction: 0.05 =
    5 points) of the curve's first point; among equals, the higher F1, then the lower threshold.

    ``any_model`` also keeps the added false refusals within ``max_f1_cost``: an answerable
    question refused costs at most its F1, so the bound holds for a model that answers everything
    right, not only for the (weak) model the report was run with, whose F1 has little to lose."""
    base = curve[0]
    if base["f1"] is None or all(c["confabulation_rate"] is None for c in curve):
        raise CalibrationError("calibrating needs answerable and unanswerable questions")
    budget = max_f1_cost + 1e-12
    allowed = [
        c
        for c in curve
        if c["f1"] >= base["f1"] - budget
        and (not any_model or c["false_refusal_rate"] - base["false_refusal_rate"] <= budget)
    ]
    return min(allowed, key=lambda c: (c["confabulation_rate"], -c["f1"], c["threshold"]))


def markdown(curve: list[dict], chosen: dict | None) -> str:
    def pct(v):
        return "–" if v is None else f"{100 * v:.1f}"

    lines = [
        "| threshold | F1 (answerable) | false refusal | confabulation | correct refusal "
        "| refused without the LLM |",
        "|---|---|---|---|---|---|",
    ]
    for c in curve:
        label = "off" if c["threshold"] <= OFF else f"{c['threshold']:.3f}"
        if c is chosen:
            label = f"**{label} (chosen)**"
        lines.append(
            f"| {label} | {pct(c['f1'])} | {pct(c['false_refusal_rate'])} | "
            f"{pct(c['confabulation_rate'])} | {pct(c['correct_refusal_rate'])} | "
            f"{pct(c['refused_without_llm'])} |"
        )
    return "\n".join(lines)


def plot(curve: list[dict], chosen: dict | None, path: Path, title: str = "") -> None:
    """Threshold against confabulation (unanswerable) and F1 (answerable)."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    points = [c for c in curve if c["threshold"] > OFF]
    xs = [c["threshold"] for c in points]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if points and points[0]["confabulation_rate"] is not None:  # unanswerable questions present
        ax.plot(xs, [100 * c["confabulation_rate"] for c in points], marker=".", label="confabulation")
    ax.plot(xs, [100 * c["f1"] for c in points], marker=".", label="F1 (answerable)")
    ax.plot(xs, [100 * c["false_refusal_rate"] for c in points], ls="--", label="false refusal")
    if chosen is not None:
        ax.axvline(chosen["threshold"], color="grey", ls=":", label=f"chosen {chosen['threshold']:.3f}")
    ax.set(xlabel="RAGQA_REFUSAL_MIN_SCORE (best retrieved relevance)", ylabel="%", ylim=(0, 101))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
