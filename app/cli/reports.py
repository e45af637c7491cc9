"""`ragqa eval-table` and `ragqa refusal-curve`: read eval reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import cli, err


@cli.command("eval-table")
def eval_table(
    reports: Annotated[list[Path], typer.Argument(help="eval report JSON files")],
    same_questions: Annotated[
        bool, typer.Option(help="score all reports on the questions they share")
    ] = False,
) -> None:
    """One markdown row per eval report: answers by prompt mode and strategy, closed-book beside."""
    from app.evaluation import report as reports_

    try:
        loaded = [json.loads(p.read_text(encoding="utf-8")) for p in reports]
        print(reports_.comparison(loaded, same_questions))
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[red]cannot read the reports:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


@cli.command("refusal-curve")
def refusal_curve(
    report: Annotated[Path, typer.Argument(help="an eval report JSON, best run with --refusal-min-score -1")],
    out: Annotated[Path | None, typer.Option(help="PNG; default: beside the report")] = None,
    max_f1_cost: Annotated[
        float, typer.Option(min=0, max=100, help="F1 points the threshold may cost on answerable questions")
    ] = 5.0,
    any_model: Annotated[
        bool,
        typer.Option(help="also bound the F1 a perfect model would lose: false refusals within the budget"),
    ] = True,
) -> None:
    """Replay refusal thresholds on an eval report: confabulation and F1 per threshold, and the
    threshold with the least confabulation within the F1 budget."""
    from app.evaluation import calibration

    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        curve = calibration.refusal_curve(data)
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[red]cannot calibrate on {report}:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    try:
        chosen = calibration.choose_threshold(curve, max_f1_cost / 100, any_model)
    except calibration.CalibrationError as exc:  # e.g. squad-v1.1: the curve alone still informs
        err.print(f"no threshold chosen: {exc}")
        chosen = None
    out = out or report.with_name(report.stem + "-refusal-curve.png")
    config = data["run"]["config"]
    title = f"{Path(data['run']['questions_file']).parent.name}: {config['prompt_mode']}, {config.get('strategy', 'direct')}"
    calibration.plot(curve, chosen, out, title)
    print(
        json.dumps(
            {
                "report": str(report),
                "max_f1_cost": max_f1_cost,
                "any_model": any_model,
                "chosen": chosen,
                "curve": curve,
            }
        )
    )
    print(calibration.markdown(curve, chosen))
    err.print(f"plot: {out}")
