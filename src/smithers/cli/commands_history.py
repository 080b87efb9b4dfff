"""Time travel over frames: timeline, fork, replay, retry-task, rewind (DESIGN §10.3).

The logic lives in :mod:`smithers.history`; these commands parse, call it and print.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM, STATUS_EXIT, DbOption, JsonOption, app

if TYPE_CHECKING:
    from ..ops import RunOutcome
    from ..storage.store import Store

RunArg = Annotated[str, typer.Argument(help="The run id (see: smithers ps).", show_default=False)]
FrameOpt = Annotated[int, typer.Option("--frame", help="The frame (see: smithers timeline RUN).", show_default=False)]
ResetOpt = Annotated[
    list[str] | None,
    typer.Option("--reset-node", help="Run this node (and what depends on it) again; repeatable.", show_default=False),
]
InputOpt = Annotated[str | None, typer.Option("--input", "-i", help="New input for the fork: JSON, or @file.json.", show_default=False)]
LabelOpt = Annotated[str | None, typer.Option("--label", help="A name for the fork (shown by timeline).", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")]
SourceOpt = Annotated[bool, typer.Option("--allow-source-change", help="Run even if the workflow source changed since the run started.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Restore files even over changes no snapshot of the run holds.")]


def _store(db: str | None) -> Store:
    from .. import ops

    return ops.open_store(db)


def _drive(store: Store, run_id: str, *, json_out: bool, quiet: bool, allow_source_change: bool, head: dict[str, Any]) -> int:
    """Drive a queued run now (as ``smithers resume`` does) and report its outcome; with
    ``--json`` one document: ``head`` plus the outcome's ``status``, ``error`` and extras."""
    from .. import ops
    from .views import make_view

    view = make_view(quiet=quiet or json_out, store=store)
    try:
        outcome = ops.resume_run(
            run_id, store=store, allow_source_change=allow_source_change, on_events=view.on_events, on_started=view.started,
            handle_signals=True,
        )
        outcome = ops.follow_chain(outcome, store=store, on_events=view.on_events, on_started=view.started, handle_signals=True)
    finally:
        view.close()
    return _report(outcome, json_out, head)


def _report(outcome: RunOutcome, json_out: bool, head: dict[str, Any]) -> int:
    if json_out:
        typer.echo(json.dumps({**head, "run_id": outcome.run_id, "status": outcome.status, "error": outcome.error, **outcome.extra}))
        if outcome.exit_signal is not None:
            return EXIT_SIGINT if outcome.exit_signal == 2 else EXIT_SIGTERM
        return STATUS_EXIT.get(outcome.status, EXIT_FAILED)
    from .commands_run import _report_outcome

    return _report_outcome(outcome, False)


# -- timeline ----------------------------------------------------------------------------------


@app.command()
def timeline(
    run_id: RunArg,
    tree: Annotated[bool, typer.Option("--tree", help="Nest forks of forks.")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Show a run's frames (one per step and per plan change) and the runs forked from it.

    Example: smithers timeline 20261203-101500-ab12cd --tree
    """
    from ..history import timeline as build

    result = build(_store(db), run_id, tree=tree)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return 0
    from .format import when

    lines = [f"run {run_id}: {len(result['frames'])} frames"]
    for frame in result["frames"]:
        if frame["kind"] == "plan":
            what = "plan"
        else:
            what = ", ".join(
                f"{s['node_id']}[{s['iteration']}] {s['step']}" + (f" (attempt {s['attempt']})" if s["attempt"] else "")
                for s in frame["steps"][:3]
            ) + (f" +{len(frame['steps']) - 3} more" if len(frame["steps"]) > 3 else "")
        snap = f"  snapshot {frame['snapshot'][:12]}" if frame["snapshot"] else ""
        lines.append(f"  {frame['frame_no']:>5}  {when(frame['created_at_ms'])}  {what}{snap}")
    lines.extend(_fork_lines(result["forks"], 1))
    typer.echo("\n".join(lines))
    return 0


def _fork_lines(forks: list[dict[str, Any]], depth: int) -> list[str]:
    lines = []
    for fork in forks:
        label = f" {fork['label']!r}" if fork.get("label") else ""
        lines.append(f"{'  ' * depth}fork {fork['run_id']}{label} at frame {fork['frame_no']} ({fork['status']})")
        lines.extend(_fork_lines(fork.get("forks", []), depth + 1))
    return lines


# -- fork, replay ------------------------------------------------------------------------------


def _fork(store: Store, run_id: str, frame: int, reset_node: list[str] | None, input: str | None, label: str | None) -> dict[str, Any]:
    from .. import ops
    from ..history import fork_run

    return fork_run(store, run_id, frame, reset_nodes=reset_node or (), raw_input=ops.parse_input(input), label=label)


@app.command()
def fork(
    run_id: RunArg,
    frame: FrameOpt,
    reset_node: ResetOpt = None,
    input: InputOpt = None,
    label: LabelOpt = None,
    run: Annotated[bool, typer.Option("--run", help="Run the fork now (else it is queued: smithers resume NEW_ID).")] = False,
    quiet: QuietOpt = False,
    allow_source_change: SourceOpt = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Start a new run from a run's state at a frame: what had finished by then is kept.

    The new run is queued (or runs now with --run); the original run is not changed.

    Example: smithers fork 20261203-101500-ab12cd --frame 4 --reset-node review --label "stricter review"
    """
    store = _store(db)
    result = _fork(store, run_id, frame, reset_node, input, label)
    if run:
        if not json_out:
            typer.echo(f"forked {run_id} at frame {frame} as {result['run_id']}; running it")
        return _drive(store, result["run_id"], json_out=json_out, quiet=quiet, allow_source_change=allow_source_change, head=result)
    if json_out:
        typer.echo(json.dumps(result))
    else:
        typer.echo(result["run_id"])
        typer.echo(f"  forked from {run_id} at frame {frame}; run it with: smithers resume {result['run_id']}", err=True)
    return 0


@app.command()
def replay(
    run_id: RunArg,
    frame: FrameOpt,
    restore_files: Annotated[
        bool, typer.Option("--restore-files", help="First put the working tree back to the frame's snapshot.")
    ] = False,
    force: ForceOpt = False,
    reset_node: ResetOpt = None,
    input: InputOpt = None,
    label: LabelOpt = None,
    quiet: QuietOpt = False,
    allow_source_change: SourceOpt = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Fork a run at a frame and run the fork now (--restore-files: with the files as they were then).

    Example: smithers replay 20261203-101500-ab12cd --frame 4 --restore-files
    """
    store = _store(db)
    restored: dict[str, Any] | None = None
    if restore_files:
        from ..history import restore_frame_files

        restored = restore_frame_files(store, run_id, frame, force=force)
    result = _fork(store, run_id, frame, reset_node, input, label)
    if restored is not None:
        result["restored"] = restored
    if not json_out:
        if restored is not None:
            typer.echo(f"restored the working tree to snapshot {restored['commit'][:12]} ({len(restored['files'])} files changed)")
        typer.echo(f"forked {run_id} at frame {frame} as {result['run_id']}; running it")
    return _drive(store, result["run_id"], json_out=json_out, quiet=quiet, allow_source_change=allow_source_change, head=result)


# -- retry-task --------------------------------------------------------------------------------


@app.command("retry-task")
def retry_task(
    run_id: RunArg,
    node: Annotated[str, typer.Option("--node", help="The node to run again.", show_default=False)],
    iteration: Annotated[int | None, typer.Option("--iteration", help="Its iteration (default: the newest).", show_default=False)] = None,
    no_deps: Annotated[bool, typer.Option("--no-deps", help="Reset only this node, not what depends on it.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Drive the run now (else: smithers resume RUN).")] = False,
    quiet: QuietOpt = False,
    allow_source_change: SourceOpt = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Put a node (and what depends on it) back to pending; the run becomes queued. Files are not touched.

    Example: smithers retry-task 20261203-101500-ab12cd --node fix --resume
    """
    from ..history import retry_task as reset

    store = _store(db)
    result = reset(store, run_id, node, iteration=iteration, deps=not no_deps)
    if resume:
        if not json_out:
            typer.echo(_reset_line(result))
        return _drive(store, run_id, json_out=json_out, quiet=quiet, allow_source_change=allow_source_change, head=result)
    if json_out:
        typer.echo(json.dumps(result))
    else:
        typer.echo(_reset_line(result))
        typer.echo(f"  run it with: smithers resume {run_id}")
    return 0


def _reset_line(result: dict[str, Any]) -> str:
    names = ", ".join(f"{r['node_id']}[{r['iteration']}]" for r in result["reset"][:8])
    more = f" +{len(result['reset']) - 8} more" if len(result["reset"]) > 8 else ""
    return f"run {result['run_id']} queued; pending again: {names}{more}"


# -- rewind ------------------------------------------------------------------------------------


@app.command()
def rewind(
    run_id: RunArg,
    frame: FrameOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this drops everything after the frame.")] = False,
    force: ForceOpt = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Destructive: take a run back to a frame (drop later frames, attempts and outputs, restore the files).

    The run is left queued (smithers resume RUN continues it). Needs --yes; refused while the run is running.

    Example: smithers rewind 20261203-101500-ab12cd --frame 4 --yes
    """
    from ..history import rewind_run

    result = rewind_run(_store(db), run_id, frame, yes=yes, force=force)
    if json_out:
        typer.echo(json.dumps(result))
        return 0
    typer.echo(
        f"run {run_id} rewound to frame {frame}: {len(result['reset'])} nodes pending again, "
        f"{result['dropped_frames']} frames and {result['dropped_attempts']} attempts dropped; it is queued"
    )
    if result.get("restored"):
        typer.echo(f"  files restored to snapshot {result['restored']['commit'][:12]} ({len(result['restored']['files'])} changed)")
    typer.echo(f"  continue it with: smithers resume {run_id}")
    return 0
