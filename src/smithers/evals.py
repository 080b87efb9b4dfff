"""``smithers eval``: run a workflow over a JSONL dataset, score each case, compare two evals.

Each dataset line ``{"id"?, "input": {...}, "expected"?: ...}`` becomes an ordinary run
(``smithers up`` in a child process, at most ``concurrency`` at a time) whose id is
``<eval id>-<case id>``, tagged in ``_smithers_eval_runs`` with the eval id, the case id and
``expected`` *before* it starts, so the workflow's scorers see ``expected`` (also after a
resume). The eval's own scorers (``--scorer module:attr``) score the case's result — the
output of the task that finished last — once its run finished; their rows go to
``_smithers_scores`` like any other. A case *passes* when its run finished and none of its
scores errored or fell below ``pass_threshold``.

>>> report = run_eval("wf.py", dataset=Path("cases.jsonl"), store=store, concurrency=2)  # doctest: +SKIP
>>> report["aggregate"]["pass_rate"]                                                     # doctest: +SKIP
0.8
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .authoring.loader import LoadedWorkflow, load_workflow
from .authoring.scoring import Scorer, as_scorer
from .engine.scoring import attempt_input, compute_score, record_score
from .errors import InputError, UserError
from .events.ndjson import run_dir
from .queries.scores import mean_scores, score_row
from .states import EventType, RunStatus
from .storage.output_tables import table_name
from .storage.store import Store, now_ms
from .storage.target import child_db

CASE_KEYS = frozenset({"id", "input", "expected"})
SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
REPORT_VERSION = 1


@dataclass(frozen=True)
class Case:
    """One dataset line."""

    id: str
    input: dict[str, Any]
    expected: Any
    line: int


def load_dataset(path: Path, loaded: LoadedWorkflow | None = None) -> list[Case]:
    """Parse and check a JSONL dataset (blank lines skipped); any bad line is an
    :class:`InputError` naming ``file:line``. With ``loaded``, each input is validated
    against the workflow's input model too, before any run starts."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read dataset {path}: {err.strerror}", hint="pass --dataset CASES.jsonl") from None
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: not valid JSON ({err.msg} at column {err.colno})", hint=_LINE_HINT) from None
        if not isinstance(item, dict):
            raise InputError(f"{where}: a case must be a JSON object, got {type(item).__name__}", hint=_LINE_HINT)
        unknown = sorted(set(item) - CASE_KEYS)
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}", hint=_LINE_HINT)
        if not isinstance(item.get("input"), dict):
            raise InputError(f"{where}: \"input\" must be a JSON object (the run's input)", hint=_LINE_HINT)
        case_id = item.get("id", f"case-{len(cases) + 1}")
        if isinstance(case_id, bool) or not isinstance(case_id, (str, int)) or not str(case_id).strip():
            raise InputError(f"{where}: \"id\" must be a non-empty string or number, got {case_id!r}")
        case_id = str(case_id)
        if case_id in seen:
            raise InputError(f"{where}: case id {case_id!r} is already used on line {seen[case_id]}", hint="case ids must be unique")
        seen[case_id] = number
        if loaded is not None:
            try:
                loaded.workflow.validate_input(item["input"])
            except InputError as err:
                raise InputError(f"{where}: {err.message}", hint="fix this case's \"input\"", details=err.details) from None
        cases.append(Case(case_id, item["input"], item.get("expected"), number))
    if not cases:
        raise InputError(f"dataset {path} has no cases", hint=_LINE_HINT)
    return cases


_LINE_HINT = 'each line is {"id": "c1", "input": {...}, "expected": ...} ("id" and "expected" optional)'


def load_scorer(spec: str) -> Scorer:
    """``module:attr`` or ``file.py:attr`` → a scorer (the attribute may be a scorer object, an
    ``@scorer`` function or a plain function of a ScoreInput)."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise UserError(f"--scorer {spec!r}: expected module:attr or file.py:attr", hint="e.g. --scorer my_scorers:exact_match")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).resolve()
            module_spec = importlib.util.spec_from_file_location(f"_smithers_scorer_{path.stem}", path)
            if module_spec is None or module_spec.loader is None or not path.is_file():
                raise UserError(f"--scorer {spec!r}: no file {path}")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"--scorer {spec!r}: cannot import {module_name}: {err}") from None
    if not hasattr(module, attr):
        raise UserError(f"--scorer {spec!r}: {module_name} has no attribute {attr!r}")
    try:
        return as_scorer(getattr(module, attr), owner=f"--scorer {spec}")
    except Exception as err:  # RenderError from as_scorer: surface it as a usage error naming the option
        raise UserError(f"--scorer {spec!r}: {err}") from None


def new_eval_id() -> str:
    return "eval-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def case_run_id(eval_id: str, case: Case, index: int) -> str:
    return f"{eval_id}-{case.id}" if SAFE_ID.match(case.id) else f"{eval_id}-{index + 1:03d}"


# -- running -----------------------------------------------------------------------------------


def run_eval(
    spec: str, *, dataset: Path, store: Store, concurrency: int = 2, scorers: list[str] | None = None, pass_threshold: float = 0.5,
    eval_id: str | None = None, on_case: Any = None,
) -> dict[str, Any]:
    """Run every case of ``dataset`` through workflow ``spec`` and return the report (see module doc)."""
    if concurrency < 1:
        raise UserError(f"--concurrency must be at least 1, got {concurrency}")
    if not 0.0 <= pass_threshold <= 1.0:
        raise UserError(f"--pass-threshold must be between 0 and 1, got {pass_threshold}")
    loaded = load_workflow(spec)
    cases = load_dataset(dataset, loaded)
    extra = [load_scorer(s) for s in scorers or []]
    eval_id = eval_id or new_eval_id()
    started = now_ms()
    results = asyncio.run(_run_cases(spec, loaded, cases, store, eval_id, concurrency, extra, on_case))
    return _report(eval_id, spec, dataset, cases, results, started, pass_threshold)


async def _run_cases(
    spec: str, loaded: LoadedWorkflow, cases: list[Case], store: Store, eval_id: str, concurrency: int, extra: list[Scorer], on_case: Any,
) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, case: Case) -> dict[str, Any]:
        async with gate:
            run_id = case_run_id(eval_id, case, index)
            with store.tx(run_id) as tx:  # tagged before the run exists: its scorers see `expected` from the start
                tx.tag_eval_run(run_id, eval_id=eval_id, case_id=case.id, expected=case.expected)
            exit_code = await _up(spec, run_id, case, store)
            await _score_case(store, loaded, run_id, case, extra)
            result = _case_result(store, run_id, case, exit_code)
            if on_case is not None:
                on_case(result)
            return result

    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(cases))))


async def _up(spec: str, run_id: str, case: Case, store: Store) -> int:
    """``smithers up`` for one case, in a child process (its output in the run's ``output.log``)."""
    log_path = run_dir(store.home, run_id) / "output.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    db_args, db_env = child_db(store.target)
    argv = [
        sys.executable, "-P", "-m", "smithers", "up", spec, "--run-id", run_id, "--input", json.dumps(case.input), *db_args, "--quiet",
    ]
    with open(log_path, "ab") as log:
        child = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **db_env},
        )
        return await child.wait()


async def _score_case(store: Store, loaded: LoadedWorkflow, run_id: str, case: Case, extra: list[Scorer]) -> None:
    """The eval's own scorers, on the output of the task that finished last (a finished run only)."""
    run = store.get_run(run_id)
    if not extra or run is None or run["status"] != RunStatus.FINISHED:
        return
    last = store.last_event_of(run_id, (EventType.NODE_FINISHED,))
    if last is None or last.get("node_id") is None:
        return
    node_id, iteration = last["node_id"], int(last.get("iteration") or 0)
    rows = [r for r in store.nodes(run_id, node_id) if r["iteration"] == iteration]
    output: Any = None
    model = None
    if rows:
        table = rows[0]["output_table"]
        model = next((m for m in loaded.models if table_name(m) == table), None)
        for row in store.read_output_rows(table, run_id, node_id):
            if row["iteration"] == iteration:
                output = store.output_decoder(model).decode(row) if model is not None else row
    attempts = store.finished_attempts(run_id, node_id, iteration)
    record = attempts[-1] if attempts else {"iteration": iteration, "attempt": 0}
    input_value, _ = loaded.workflow.validate_input(case.input)
    inp = attempt_input(
        store, run_id, None, record, node_id=node_id, input_value=input_value, output=output, expected=case.expected, model=model,
    )
    for scorer in extra:
        score, error, latency_ms = await compute_score(scorer, inp)
        record_score(store, run_id, None, inp, scorer.name, score, error, latency_ms)


def _case_result(store: Store, run_id: str, case: Case, exit_code: int) -> dict[str, Any]:
    run = store.get_run(run_id)
    rows = [score_row(r) for r in store.scores(run_id)]
    status = str(run["status"]) if run else "not-started"
    error = json.loads(run["error_json"]) if run and run.get("error_json") else None
    if run is None:
        error = {"type": "NotStarted", "message": f"smithers up exited {exit_code} before creating the run; see its output.log"}
    finished_at = run.get("finished_at_ms") or run.get("updated_at_ms") if run else None
    return {
        "case_id": case.id, "line": case.line, "run_id": run_id, "status": status, "exit_code": exit_code,
        "duration_ms": (finished_at - run["created_at_ms"]) if run and finished_at else None,
        "usage": store.usage_of(run_id), "scores": mean_scores(rows), "score_rows": rows,
        "score_errors": sorted({r["scorer"] for r in rows if r["error"]}),
        "error": error,
    }


def _report(
    eval_id: str, spec: str, dataset: Path, cases: list[Case], results: list[dict[str, Any]], started: int, pass_threshold: float,
) -> dict[str, Any]:
    names = sorted({name for r in results for name in (*r["scores"], *r["score_errors"])})
    for r in results:
        r["passed"] = r["status"] == RunStatus.FINISHED and not r["score_errors"] and all(
            v >= pass_threshold for v in r["scores"].values()
        )
    means: dict[str, float] = {}
    for name in names:
        values = [r["scores"][name] for r in results if name in r["scores"]]
        if values:
            means[name] = sum(values) / len(values)
    total = len(results)
    return {
        "version": REPORT_VERSION, "eval_id": eval_id, "workflow": spec, "dataset": str(dataset), "started_at_ms": started,
        "finished_at_ms": now_ms(), "pass_threshold": pass_threshold, "scorers": names, "cases": results,
        "aggregate": {
            "cases": total, "finished": sum(r["status"] == RunStatus.FINISHED for r in results),
            "failed": sum(r["status"] != RunStatus.FINISHED for r in results), "passed": sum(r["passed"] for r in results),
            "pass_rate": sum(r["passed"] for r in results) / total if total else 0.0, "mean": means,
        },
    }


# -- comparing ---------------------------------------------------------------------------------


def load_report(path: Path) -> dict[str, Any]:
    """An eval report written by ``smithers eval --report``; anything else is an InputError naming the file."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read eval report {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not an eval report (invalid JSON at line {err.lineno}: {err.msg})") from None
    if not isinstance(report, dict) or not isinstance(report.get("cases"), list) or not isinstance(report.get("aggregate"), dict):
        raise InputError(
            f"{path}: not an eval report (no \"cases\" and \"aggregate\")",
            hint="write one with: smithers eval WF --dataset D --report OUT.json",
        )
    return report


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per-scorer and per-case deltas from report ``a`` (before) to ``b`` (after). A case is
    matched by its id; ``regressions`` lists the cases that got worse (a scorer dropped, a pass
    became a fail, a finished run failed)."""
    mean_a, mean_b = a["aggregate"].get("mean", {}), b["aggregate"].get("mean", {})
    scorer_names = sorted(set(mean_a) | set(mean_b))
    scorers = [{"scorer": n, "a": mean_a.get(n), "b": mean_b.get(n), "delta": _delta(mean_a.get(n), mean_b.get(n))} for n in scorer_names]
    cases_a = {c["case_id"]: c for c in a["cases"]}
    cases_b = {c["case_id"]: c for c in b["cases"]}
    cases, regressions = [], []
    for case_id in [*cases_a, *(k for k in cases_b if k not in cases_a)]:
        ca, cb = cases_a.get(case_id), cases_b.get(case_id)
        sa, sb = (ca or {}).get("scores", {}), (cb or {}).get("scores", {})
        per = {n: {"a": sa.get(n), "b": sb.get(n), "delta": _delta(sa.get(n), sb.get(n))} for n in sorted(set(sa) | set(sb))}
        entry = {
            "case_id": case_id, "status_a": ca["status"] if ca else None, "status_b": cb["status"] if cb else None,
            "passed_a": ca.get("passed") if ca else None, "passed_b": cb.get("passed") if cb else None, "scores": per,
        }
        worse = any(d["delta"] is not None and d["delta"] < 0 for d in per.values()) or (entry["passed_a"] and entry["passed_b"] is False)
        if worse:
            regressions.append(case_id)
        cases.append(entry)
    pa, pb = a["aggregate"].get("pass_rate"), b["aggregate"].get("pass_rate")
    return {
        "a": a.get("eval_id"), "b": b.get("eval_id"), "scorers": scorers,
        "pass_rate": {"a": pa, "b": pb, "delta": _delta(pa, pb)}, "cases": cases, "regressions": regressions,
    }


__all__ = ["Case", "case_run_id", "compare_reports", "load_dataset", "load_report", "load_scorer", "run_eval"]
