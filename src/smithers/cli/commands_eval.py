"""``smithers eval``: run a workflow over a dataset and score it; ``smithers eval compare A B``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import EXIT_FAILED, DbOption, JsonOption, app

if TYPE_CHECKING:
    from rich.text import Text


REPORTS_HELP = "With `compare`: the two report files, before and after."
DATASET_HELP = 'JSONL: one {"id"?, "input": {...}, "expected"?} per line.'
SCORER_HELP = "An extra scorer module:attr (or file.py:attr) for each case's result; repeatable."
THRESHOLD_HELP = "A case passes when its run finished and every score is at least this."


@app.command("eval")
def eval_command(
    target: Annotated[str, typer.Argument(help="The workflow (path.py or path.py:name), or `compare`.", metavar="WF|compare")],
    reports: Annotated[list[str] | None, typer.Argument(help=REPORTS_HELP, metavar="[A B]")] = None,
    dataset: Annotated[Path | None, typer.Option("--dataset", help=DATASET_HELP)] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Cases run at the same time.")] = 2,
    scorer: Annotated[list[str] | None, typer.Option("--scorer", help=SCORER_HELP)] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report to this file.")] = None,
    pass_threshold: Annotated[float, typer.Option("--pass-threshold", help=THRESHOLD_HELP)] = 0.5,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Run a workflow over a dataset, one ordinary run per case, and score every case.

    Prints a table per case (status, each scorer's mean, duration, tokens, cost) and the mean of
    each scorer and the pass rate. Exit 1 when a case's run did not finish; a bad dataset line
    exits 4 naming file:line. `smithers eval compare A.json B.json` shows per-scorer and
    per-case deltas between two reports.

    Example: smithers eval review.py --dataset cases.jsonl --concurrency 4 --report v2.json
    """
    from ..errors import UserError

    if target == "compare":
        if len(reports or []) != 2 or dataset is not None:
            raise UserError("usage: smithers eval compare A.json B.json [--json]", hint="pass the two reports written by --report")
        a, b = reports or []
        return _compare(Path(a), Path(b), json_out)
    if reports:
        raise UserError(f"unexpected argument(s) {' '.join(reports)}", hint="usage: smithers eval WF --dataset CASES.jsonl")
    if dataset is None:
        raise UserError("smithers eval needs --dataset CASES.jsonl", hint=f"smithers eval {target} --dataset cases.jsonl")
    from .. import ops
    from ..evals import run_eval

    store = ops.open_store(db)
    result = run_eval(
        target, dataset=dataset, store=store, concurrency=concurrency, scorers=scorer, pass_threshold=pass_threshold,
        on_case=None if json_out else _progress,
    )
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if json_out:
        typer.echo(json.dumps(result))
    else:
        _show(result, report)
    return EXIT_FAILED if result["aggregate"]["failed"] else 0


def _progress(case: dict[str, Any]) -> None:
    typer.echo(f"  {case['case_id']}: {case['status']} (run {case['run_id']})", err=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _status(status: str, passed: bool | None = None) -> Text:
    from .format import status_text

    text = status_text(status)
    if passed is not None:
        text.append(" ✓" if passed else " ✗")
    return text


def _show(result: dict[str, Any], report: Path | None) -> None:
    from .format import duration, table

    names = result["scorers"]
    rows = []
    for case in result["cases"]:
        usage = case["usage"]
        tokens = sum(v for k, v in usage.items() if k in ("input_tokens", "output_tokens"))
        cost = usage.get("cost_usd")
        scores = [
            "error" if name in case["score_errors"] and name not in case["scores"] else _num(case["scores"].get(name)) for name in names
        ]
        rows.append([
            case["case_id"], _status(case["status"], case["passed"]), *scores,
            duration(case["duration_ms"]) if case["duration_ms"] is not None else "-",
            str(tokens) if usage else "-", f"${cost:.4f}" if isinstance(cost, (int, float)) else "-",
        ])
    agg = result["aggregate"]
    rows.append(["mean", f"{agg['passed']}/{agg['cases']} passed", *(_num(agg["mean"].get(n)) for n in names), "", "", ""])
    typer.echo("\n".join(table(["CASE", "STATUS", *names, "TOOK", "TOKENS", "COST"], rows, right=[*names, "TOOK", "TOKENS", "COST"])))
    typer.echo(f"\neval {result['eval_id']}: {agg['finished']}/{agg['cases']} finished, pass rate {agg['pass_rate']:.0%}"
               + (f"; report: {report}" if report else ""))


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _compare(a_path: Path, b_path: Path, json_out: bool) -> int:
    from ..evals import compare_reports, load_report
    from .format import table

    diff = compare_reports(load_report(a_path), load_report(b_path))
    if json_out:
        typer.echo(json.dumps(diff))
        return 0
    pr = diff["pass_rate"]
    lines = table(
        ["SCORER", "A", "B", "DELTA"],
        [[s["scorer"], _num(s["a"]), _num(s["b"]), _signed(s["delta"])] for s in diff["scorers"]]
        + [["pass rate", _num(pr["a"]), _num(pr["b"]), _signed(pr["delta"])]],
        right=["A", "B", "DELTA"],
    )
    typer.echo(f"A: {a_path} ({diff['a']})\nB: {b_path} ({diff['b']})\n")
    typer.echo("\n".join(lines))
    names = [s["scorer"] for s in diff["scorers"]]
    case_rows = [
        [c["case_id"], f"{c['status_a'] or '-'} → {c['status_b'] or '-'}",
         *(_signed(c["scores"].get(n, {}).get("delta")) for n in names), "worse" if c["case_id"] in diff["regressions"] else ""]
        for c in diff["cases"]
    ]
    typer.echo("")
    typer.echo("\n".join(table(["CASE", "STATUS", *(f"Δ {n}" for n in names), ""], case_rows, right=[f"Δ {n}" for n in names])))
    typer.echo(f"\n{len(diff['regressions'])} case(s) got worse" + (f": {', '.join(diff['regressions'])}" if diff["regressions"] else ""))
    return 0
