"""Time travel over frames (DESIGN §10.3): timeline, fork, replay, retry-task, rewind.

Frames are the run's time axis: one per step (a task finished, failed or was skipped) and
one per plan change, stored as deltas (:mod:`smithers.storage.frames`). The state of a run
at frame N — which nodes had finished (or been skipped), the plan, each loop's pass — is
rebuilt by folding those deltas up to N, never from full copies:

- a node counts as done at frame N when its last step up to N is ``finished`` or
  ``skipped``, and no ``retry-task`` reset it after N (its output row then is not the one it
  had at N); a node with no step at all in the run was carried in when the run was created
  (a fork, a continue-as-new link) and is done from frame 0 if it is done now;
- each loop's pass at N comes from the ``LoopIteration``/``LoopFinished`` events up to frame
  N's event.

Each verb validates first, then writes one transaction with its events.

>>> fork_run(store, "20261203-101500-ab12cd", 4)   # doctest: +SKIP
{'run_id': '20261203-101733-9f00aa', 'forked_from': '20261203-101500-ab12cd', 'frame_no': 4}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorCode, RunOwnedError, UnknownNodeError, UserError
from .queries.runs import get_run
from .states import EventType, NodeStatus, RunStatus
from .storage.frames import STEP_FINISHED, STEP_RESET, STEP_SKIPPED, Entries, fold_steps, rebuild, steps_of
from .storage.lease import owner_alive
from .storage.store import Store
from .storage.target import database_files

# steps that leave a node done (its output, or its skip, is part of the state at that frame)
DONE_STEPS = {STEP_FINISHED: NodeStatus.FINISHED, STEP_SKIPPED: NodeStatus.SKIPPED}
DONE_STATUSES = frozenset({NodeStatus.FINISHED, NodeStatus.SKIPPED})
# containers whose children run one after another: a later child depends on an earlier one
SEQUENTIAL = frozenset({"sequence", "workflow", "loop", "approval", "worktree"})

Key = tuple[str, int]


@dataclass
class FrameState:
    """A run as of frame ``frame_no``: what was done by then, the plan, each loop's pass."""

    run: dict[str, Any]
    frame_no: int
    frames: int
    event_seq: int
    entries: Entries
    done: dict[Key, str]  # (node_id, iteration) -> finished | skipped
    loops: dict[str, tuple[int, bool] | None]  # loop id -> (pass, done); None: not started by then
    nodes: list[dict[str, Any]] = field(default_factory=list)  # the node rows as they are now


@dataclass
class ResetSet:
    """The nodes a reset puts back to pending, and the loop it moves back (if any)."""

    keys: list[Key]
    loop: tuple[str, int] | None = None  # (loop id, pass) for a node inside a loop, with its dependents


# -- reading the state at a frame ------------------------------------------------------------


def check_frame(store: Store, run_id: str, frame_no: int) -> int:
    """The run's frame count; exit 4 naming the range when ``frame_no`` is not one of its frames."""
    count = store.frame_count(run_id)
    if count == 0:
        raise UserError(f"run {run_id} has no frames yet (it has not rendered)", hint=f"see why with: smithers why {run_id}",
                        code=ErrorCode.UNKNOWN_FRAME)
    if not 0 <= frame_no < count:
        raise UserError(
            f"run {run_id} has {count} frame{'s' if count != 1 else ''} (0..{count - 1}); frame {frame_no} does not exist",
            hint=f"pick a frame from: smithers timeline {run_id}", code=ErrorCode.UNKNOWN_FRAME,
        )
    return count


def state_at(store: Store, run: dict[str, Any], frame_no: int) -> FrameState:
    """Rebuild ``run`` as of frame ``frame_no`` from the frame deltas (see the module docstring)."""
    run_id = run["run_id"]
    count = check_frame(store, run_id, frame_no)
    rows = store.frame_deltas(run_id)
    datas = [(row["frame_no"], json.loads(row["data_json"]) if row["data_json"] else {}) for row in rows]
    upto = fold_steps(data for number, data in datas if number <= frame_no)
    reset_later = {(s[0], s[1]) for number, data in datas if number > frame_no for s in steps_of(data) if s[2] == STEP_RESET}
    with_history = {(s[0], s[1]) for _, data in datas for s in steps_of(data)}
    nodes = store.nodes(run_id)
    done: dict[Key, str] = {}
    for row in nodes:
        key = (row["node_id"], row["iteration"])
        if key in reset_later:
            continue
        if key in with_history:
            step = upto.get(key)
            if step is not None and step[2] in DONE_STEPS:
                done[key] = DONE_STEPS[step[2]]
        elif row["status"] in DONE_STATUSES:  # carried in when the run was created
            done[key] = row["status"]
    event_seq = next(row["event_seq"] for row in rows if row["frame_no"] == frame_no)
    entries = rebuild(store.frames_from_keyframe(run_id, frame_no), frame_no, json.loads)
    return FrameState(
        run=run, frame_no=frame_no, frames=count, event_seq=event_seq, entries=entries, done=done,
        loops=_loops_at(store, run_id, event_seq), nodes=nodes,
    )


def _loops_at(store: Store, run_id: str, event_seq: int) -> dict[str, tuple[int, bool] | None]:
    """Each loop's (pass, done) as of event ``event_seq``; None for a loop that had not started.
    A loop with no event at all was carried in (continue-as-new) and keeps its state."""
    loops: dict[str, tuple[int, bool] | None] = {}
    for loop_id, state in store.loops(run_id).items():
        loops[loop_id] = state
    seen: set[str] = set()
    for event in store.loop_events(run_id):
        loop_id = event["loop_id"]
        if loop_id not in seen:
            seen.add(loop_id)
            loops[loop_id] = None
        if event["seq"] <= event_seq:
            loops[loop_id] = (event["iteration"], event["type"] == EventType.LOOP_FINISHED)
    return loops


# -- what depends on a node ------------------------------------------------------------------


@dataclass
class Dependents:
    after: set[str]  # task ids rendered after the node in a sequence that holds both
    loop_id: str | None = None  # the innermost loop around the node
    loop_body: set[str] = field(default_factory=set)  # task ids of that loop (its later passes depend on the node)


def dependents_of(entries: Entries, node_id: str) -> Dependents:
    """What depends on ``node_id`` by structure, in the plan ``entries``: every task after it
    in a Sequence (or a Loop's body, a Worktree, an Approval) that holds both, at every level,
    and the innermost loop around it. A node not in the plan has no dependents."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for entry in entries.values():
        children.setdefault(entry.get("p"), []).append(entry)

    def task_ids(entry: dict[str, Any]) -> set[str]:
        found, stack = set(), [entry]
        while stack:
            item = stack.pop()
            if item["t"] == "task":
                found.add(item["id"])
            stack.extend(children.get(item["k"], ()))
        return found

    current = entries.get(f"task:{node_id}")
    result = Dependents(after=set())
    while current is not None and current.get("p") is not None:
        parent = entries.get(current["p"])
        if parent is None:
            break
        if parent["t"] in SEQUENTIAL:
            for sibling in children.get(parent["k"], ()):
                if sibling["i"] > current["i"]:
                    result.after |= task_ids(sibling)
        if parent["t"] == "loop" and result.loop_id is None:
            result.loop_id, result.loop_body = parent["id"], task_ids(parent) - {node_id}
        current = parent
    return result


def reset_set(entries: Entries, keys: Iterable[Key], target: Key, *, deps: bool) -> ResetSet:
    """The nodes among ``keys`` that resetting ``target`` puts back to pending: the target and,
    with ``deps``, what depends on it — later tasks of the same pass of its innermost loop,
    every later pass of that loop (which then goes back to the target's pass), and every
    iteration of what comes after the loop."""
    node_id, iteration = target
    chosen = [target]
    if not deps:
        return ResetSet(keys=chosen)
    found = dependents_of(entries, node_id)
    for key in keys:
        other, other_it = key
        if key == target:
            continue
        in_loop = found.loop_id is not None and (other in found.loop_body or other == node_id)
        if in_loop:
            if (other in found.after and other_it >= iteration) or other_it > iteration:
                chosen.append(key)
        elif other in found.after:
            chosen.append(key)
    return ResetSet(keys=chosen, loop=(found.loop_id, iteration) if found.loop_id is not None else None)


def _ensure_idle(run: dict[str, Any], verb: str) -> None:
    if owner_alive(run):
        raise RunOwnedError(
            f"run {run['run_id']} is being run by pid {run['owner_pid']} on {run['owner_host']}; {verb} needs it stopped",
            hint=f"wait for it to end, or stop it with: smithers cancel {run['run_id']}",
        )
    if run["status"] == RunStatus.CONTINUED:
        raise UserError(
            f"run {run['run_id']} continued as a new run; its work goes on there",
            hint=f"find the newest link with: smithers logs {run['run_id']} --follow-ancestry",
        )


def _node_rows(state_nodes: list[dict[str, Any]], node_id: str, run_id: str) -> list[dict[str, Any]]:
    rows = [row for row in state_nodes if row["node_id"] == node_id]
    if not rows:
        known = sorted({row["node_id"] for row in state_nodes})
        raise UnknownNodeError(
            f"run {run_id} has no node {node_id!r}",
            hint=f"its nodes: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''}" if known else "it has no nodes yet",
        )
    return rows


# -- timeline --------------------------------------------------------------------------------


def timeline(store: Store, run_id: str, *, tree: bool = False) -> dict[str, Any]:
    """``smithers timeline``: ``{run_id, frames: [{frame_no, created_at_ms, snapshot, kind,
    steps}], forks: [{run_id, frame_no, label, created_at_ms, status}]}``. ``kind`` is ``plan``
    (the plan changed) or ``step`` (``steps``: ``[{node_id, iteration, step, attempt}]``);
    ``snapshot`` is the working-tree snapshot taken after the attempt that made the frame, or
    None. With ``tree``, each fork carries its own ``forks`` (forks of forks)."""
    get_run(store, run_id)
    snapshots = _attempt_snapshots(store, run_id)
    frames = []
    for row in store.frame_deltas(run_id):
        data = json.loads(row["data_json"]) if row["data_json"] else {}
        steps = [{"node_id": s[0], "iteration": s[1], "step": s[2], "attempt": s[3]} for s in steps_of(data)]
        snapshot = None
        if len(steps) == 1 and steps[0]["attempt"] is not None:
            snapshot = snapshots.get((steps[0]["node_id"], steps[0]["iteration"], steps[0]["attempt"]))
        frames.append({
            "frame_no": row["frame_no"], "created_at_ms": row["created_at_ms"], "snapshot": snapshot,
            "kind": "step" if steps else "plan", "steps": steps,
        })
    return {"run_id": run_id, "frames": frames, "forks": _forks(store, run_id, tree, {run_id})}


def _attempt_snapshots(store: Store, run_id: str) -> dict[tuple[str, int, int], str]:
    """The snapshot commit taken after each attempt: ``{(node_id, iteration, attempt): commit}``."""
    return {
        (a["node_id"], a["iteration"], a["attempt"]): a["snapshot_after"] for a in store.attempts(run_id) if a.get("snapshot_after")
    }


def _forks(store: Store, run_id: str, tree: bool, seen: set[str]) -> list[dict[str, Any]]:
    forks = store.forks_of(run_id)
    if tree:
        for fork in forks:
            if fork["run_id"] not in seen:
                seen.add(fork["run_id"])
                fork["forks"] = _forks(store, fork["run_id"], True, seen)
    return forks


# -- fork ------------------------------------------------------------------------------------


def fork_run(
    store: Store, run_id: str, frame_no: int, *, reset_nodes: Iterable[str] = (), raw_input: dict[str, Any] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """``smithers fork``: a new ``queued`` run whose state is ``run_id``'s as of frame
    ``frame_no`` — the outputs and node states of the tasks done by then, each loop's pass —
    minus ``reset_nodes`` and what depends on them. ``run_id`` is not changed. The new run's
    input is ``raw_input`` (validated against the workflow) or the parent's; its source
    fingerprint is the workflow file's now (a fork runs the code as it is). Returns
    ``{run_id, forked_from, frame_no}``."""
    from .authoring.loader import source_fingerprint, split_spec
    from .ops import new_run_id

    run = get_run(store, run_id)
    state = state_at(store, run, frame_no)
    reset_ids = list(dict.fromkeys(reset_nodes))
    for node_id in reset_ids:
        _node_rows(state.nodes, node_id, run_id)
    input_json = run["input_json"]
    if raw_input is not None:
        from .authoring.loader import load_workflow

        loaded = load_workflow(run["workflow_spec"])
        _, validated = loaded.workflow.validate_input(raw_input)
        input_json = json.dumps(validated)
    tables = {(row["node_id"], row["iteration"]): row["output_table"] for row in state.nodes}
    done = dict(state.done)
    loops = dict(state.loops)
    # a finished node whose output row is gone (retry-task removed it) is reset like --reset-node
    missing = [key for key, status in done.items() if status == NodeStatus.FINISHED and not _has_output(store, run_id, tables[key], key)]
    targets = [(node_id, max(it for (n, it) in done if n == node_id)) for node_id in reset_ids if any(n == node_id for n, _ in done)]
    for target in [*targets, *missing]:
        if target not in done:
            continue
        chosen = reset_set(state.entries, list(done), target, deps=True)
        for key in chosen.keys:
            done.pop(key, None)
        if chosen.loop is not None:
            loops[chosen.loop[0]] = (chosen.loop[1], False)
    new_id = new_run_id()
    while store.get_run(new_id) is not None:
        new_id = new_run_id()
    spec_path = split_spec(run["workflow_spec"])[0]
    source_json = json.dumps(source_fingerprint(spec_path.expanduser().resolve()))
    with store.tx(new_id) as tx:
        tx.create_fork(run, input_json=input_json, source_json=source_json, frame_no=frame_no, label=label)
        tx.event(
            EventType.RUN_FORKED, forked_from=run_id, frame_no=frame_no, label=label, reset_nodes=reset_ids,
            input_changed=input_json != run["input_json"], carried=len(done),
        )
        for (node_id, iteration), status in done.items():
            if status == NodeStatus.FINISHED:
                tx.copy_output_from(run_id, tables[(node_id, iteration)], node_id, iteration)
            tx.copy_node_from(run_id, node_id, iteration, status)
        for loop_id, loop_state in loops.items():
            if loop_state is not None:
                tx.put_loop(loop_id, loop_state[0], loop_state[1])
    return {"run_id": new_id, "forked_from": run_id, "frame_no": frame_no}


def _has_output(store: Store, run_id: str, table: str, key: Key) -> bool:
    return any(row["iteration"] == key[1] for row in store.read_output_rows(table, run_id, key[0]))


# -- retry-task ------------------------------------------------------------------------------


def retry_task(store: Store, run_id: str, node_id: str, *, iteration: int | None = None, deps: bool = True) -> dict[str, Any]:
    """``smithers retry-task``: put a node (and, with ``deps``, what depends on it) back to
    pending with a fresh retry budget; their output rows leave the live tables (the
    ``NodePending`` event of each keeps the removed row: history stays in events) and the run
    becomes ``queued``. Files are not touched. Refused while the run has a live owner.
    Returns ``{run_id, status, node_id, iteration, reset: [{node_id, iteration}], frame_no}``."""
    run = get_run(store, run_id)
    _ensure_idle(run, "retry-task")
    nodes = store.nodes(run_id)
    rows = _node_rows(nodes, node_id, run_id)
    if iteration is None:
        iteration = max(row["iteration"] for row in rows)
    elif not any(row["iteration"] == iteration for row in rows):
        raise UnknownNodeError(
            f"node {node_id!r} of run {run_id} has no iteration {iteration}",
            hint=f"its iterations: {', '.join(str(r['iteration']) for r in rows)}",
        )
    count = store.frame_count(run_id)
    entries = rebuild(store.frames_from_keyframe(run_id, count - 1), count - 1, json.loads) if count else {}
    by_key = {(row["node_id"], row["iteration"]): row for row in nodes}
    chosen = reset_set(entries, list(by_key), (node_id, iteration), deps=deps)
    keys = [key for key in chosen.keys if key == (node_id, iteration) or by_key[key]["status"] != NodeStatus.PENDING]
    with store.tx(run_id) as tx:
        current = tx.run_row()
        assert current is not None  # runs are never deleted
        _ensure_idle(current, "retry-task")  # again, under the write lock
        frame_no = tx.next_frame_no()
        for key in keys:
            removed = tx.reset_node(key[0], key[1], by_key[key]["output_table"])
            tx.event(EventType.NODE_PENDING, node_id=key[0], iteration=key[1], reason="retry-task", removed_output=removed)
        if chosen.loop is not None:
            tx.put_loop(chosen.loop[0], chosen.loop[1], False)
            tx.event(EventType.LOOP_ITERATION, loop_id=chosen.loop[0], loop_iteration=chosen.loop[1], reason="retry-task")
        tx.set_run(RunStatus.QUEUED)
        reset = [{"node_id": k[0], "iteration": k[1]} for k in keys]
        tx.event(EventType.RUN_QUEUED, status=RunStatus.QUEUED, reason="retry-task", node_id_reset=node_id, iteration=iteration,
                 reset=reset, frame=frame_no)
        tx.add_frame(frame_no, False, {"n": [[k[0], k[1], STEP_RESET, None] for k in keys]})
    return {"run_id": run_id, "status": RunStatus.QUEUED, "node_id": node_id, "iteration": iteration, "reset": reset, "frame_no": frame_no}


# -- rewind ----------------------------------------------------------------------------------


def rewind_plan(store: Store, run_id: str, frame_no: int, *, yes: bool) -> tuple[FrameState, list[Key], set[Key]]:
    """Check a rewind may go ahead and work out what it resets: (state at the frame, nodes to
    put back to pending, nodes to forget — mounted only after the frame)."""
    run = get_run(store, run_id)
    if not yes:
        raise UserError(
            f"rewind is destructive: it drops the frames, attempts and outputs of run {run_id} after frame {frame_no}",
            hint=f"look first (smithers timeline {run_id}), or fork instead (smithers fork {run_id} --frame {frame_no}); "
            "pass --yes to rewind",
            code=ErrorCode.CONFIRMATION_REQUIRED,
        )
    _ensure_idle(run, "rewind")
    state = state_at(store, run, frame_no)
    first_seen = store.first_pending_seqs(run_id)
    reset: list[Key] = []
    forget: set[Key] = set()
    for row in state.nodes:
        key = (row["node_id"], row["iteration"])
        if key in state.done:
            continue
        if first_seen.get(key, 0) > state.event_seq:
            forget.add(key)
        if key in forget or row["status"] != NodeStatus.PENDING or row["attempts"]:
            reset.append(key)
    return state, reset, forget


def rewind(store: Store, run_id: str, frame_no: int, *, yes: bool, audit: Any = None) -> dict[str, Any]:
    """``smithers rewind`` (the database half): drop the frames after ``frame_no``, the attempts
    that started after it and the outputs of the nodes not done by then; put those nodes back
    to pending, each loop back to its pass; the run becomes ``queued``. One transaction with a
    ``RunRewound`` event (and ``audit(tx, summary)``'s row, when given). Refused (exit 4)
    without ``yes`` or while the run has a live owner.
    Returns ``{run_id, status, frame_no, reset, dropped_frames, dropped_attempts}``."""
    state, reset, forget = rewind_plan(store, run_id, frame_no, yes=yes)
    tables = {(row["node_id"], row["iteration"]): row["output_table"] for row in state.nodes}
    with store.tx(run_id) as tx:
        current = tx.run_row()
        assert current is not None  # runs are never deleted
        _ensure_idle(current, "rewind")  # again, under the write lock
        dropped_attempts = tx.drop_attempts_after(state.event_seq, reset)
        for key in reset:
            tx.reset_node(key[0], key[1], tables[key], forget=key in forget)
            if key not in forget:
                tx.event(EventType.NODE_PENDING, node_id=key[0], iteration=key[1], reason="rewind")
        dropped_frames = tx.drop_frames_after(frame_no)
        for loop_id, loop_state in state.loops.items():
            if loop_state is None:
                tx.drop_loop(loop_id)
            else:
                tx.put_loop(loop_id, loop_state[0], loop_state[1])
        tx.set_run(RunStatus.QUEUED)
        summary: dict[str, Any] = {
            "run_id": run_id, "status": RunStatus.QUEUED, "frame_no": frame_no,
            "reset": [{"node_id": k[0], "iteration": k[1]} for k in reset],
            "dropped_frames": dropped_frames, "dropped_attempts": dropped_attempts,
        }
        if audit is not None:
            audit(tx, summary)
        tx.event(
            EventType.RUN_REWOUND, frame_no=frame_no, reset=summary["reset"], dropped_frames=dropped_frames,
            dropped_attempts=dropped_attempts,
        )
    return summary


# -- files: the working tree as of a frame ---------------------------------------------------


def frame_snapshots(store: Store, run: dict[str, Any], frame_no: int) -> dict[str, str]:
    """The working tree(s) of ``run`` as of frame ``frame_no``: ``{folder: snapshot commit}`` —
    for each folder the run's snapshots record, the snapshot after the last attempt that ended
    by that frame, else (for the run's own folder) the snapshot taken when the run started.
    Empty when the run took no snapshots."""
    from .errors import NoSnapshotError

    run_id = run["run_id"]
    if run.get("snapshots_pruned_at_ms"):
        raise NoSnapshotError(f"the snapshots of run {run_id} were pruned by smithers gc", hint="there are no files to restore")
    attempts = {(a["node_id"], a["iteration"], a["attempt"]): a for a in store.attempts(run_id)}
    main = run.get("snapshot_dir")
    found: dict[str, str] = {}
    for row in store.frame_deltas(run_id, upto=frame_no):
        data = json.loads(row["data_json"]) if row["data_json"] else {}
        for step in steps_of(data):
            attempt = attempts.get((step[0], step[1], step[3])) if step[3] is not None else None
            folder = attempt and (attempt.get("snapshot_dir") or main)  # an attempt outside a worktree: the run's folder
            if attempt is not None and attempt.get("snapshot_after") and folder:
                found[folder] = attempt["snapshot_after"]
    if main and main not in found and run.get("snapshot_start"):
        found[main] = run["snapshot_start"]
    return found


def restore_files(store: Store, run: dict[str, Any], targets: dict[str, str], *, force: bool, action: str) -> dict[str, Any]:
    """Put each folder back to its snapshot. Refuses (:class:`UnsavedChangesError`, exit 4) when
    a folder has changes that no snapshot of the run holds, unless ``force`` — which first saves
    the tree as one more snapshot of the run, so nothing is lost either way. Returns ``{commit,
    files, folders: [{folder, commit, files, saved}]}`` (``commit``/``files``: the run's own
    folder's, or the first one's)."""
    from .errors import UnsavedChangesError
    from .snapshots import restore, snapshot, unsaved_files

    run_id = run["run_id"]
    dirty = {folder: files for folder in targets if (files := unsaved_files(folder, run_id))}
    if dirty and not force:
        folder, files = next(iter(dirty.items()))
        shown = ", ".join(files[:10]) + (", ..." if len(files) > 10 else "")
        raise UnsavedChangesError(
            f"{folder} has changes that no snapshot of run {run_id} holds ({shown}); {action} would lose them",
            hint="commit or copy them first, or pass --force (the tree as it is is then saved as one more snapshot of the run)",
            details={"files": files, "folder": folder},
        )
    folders = []
    for folder, commit in targets.items():
        saved = snapshot(folder, run_id, f"before {action}", exclude=database_files(store)) if folder in dirty else None
        folders.append({"folder": folder, "commit": commit, "files": restore(folder, commit, run_id=run_id), "saved": saved})
    main = next((f for f in folders if f["folder"] == run.get("snapshot_dir")), folders[0] if folders else None)
    return {
        "commit": main["commit"] if main else None, "files": main["files"] if main else [], "folders": folders, "forced": force,
    }


def restore_frame_files(store: Store, run_id: str, frame_no: int, *, force: bool = False) -> dict[str, Any]:
    """``replay --restore-files``: put the working tree back to frame ``frame_no``'s snapshot
    (refusing over unsaved changes unless ``force``), with an audit row."""
    from .errors import NoSnapshotError
    from .undo import default_actor

    run = get_run(store, run_id)
    check_frame(store, run_id, frame_no)
    targets = frame_snapshots(store, run, frame_no)
    if not targets:
        why = "snapshots were off for it (--no-snapshots)" if run.get("snapshots_off") else "it took no snapshot"
        raise NoSnapshotError(f"run {run_id} has no snapshot to restore: {why}", hint="replay without --restore-files")
    restored = restore_files(store, run, targets, force=force, action="replay --restore-files")
    with store.tx(run_id) as tx:
        tx.record_audit("replay-restore-files", actor=default_actor(), detail={"frame_no": frame_no, **restored})
    return restored


def rewind_run(store: Store, run_id: str, frame_no: int, *, yes: bool, force: bool = False, actor: str | None = None) -> dict[str, Any]:
    """``smithers rewind``: check (``--yes``, no live owner, the frame), restore the files to
    the frame's snapshot (refusing over unsaved changes unless ``force``), then rewind the
    database in one transaction with its audit row and ``RunRewound``. A run without snapshots
    is rewound in the database only (``restored`` is None)."""
    from .undo import default_actor

    rewind_plan(store, run_id, frame_no, yes=yes)  # refusals first: nothing is touched
    run = get_run(store, run_id)
    targets = {} if run.get("snapshots_off") else frame_snapshots(store, run, frame_no)
    restored = restore_files(store, run, targets, force=force, action="rewind") if targets else None
    who = actor or default_actor()

    def audit(tx: Any, summary: dict[str, Any]) -> None:
        summary["restored"] = restored
        summary["audit_id"] = tx.record_audit("rewind", actor=who, detail={**summary, "forced": force})

    return rewind(store, run_id, frame_no, yes=yes, audit=audit)


__all__ = [
    "Dependents", "FrameState", "ResetSet", "check_frame", "dependents_of", "fork_run", "frame_snapshots", "reset_set",
    "restore_files", "restore_frame_files", "retry_task", "rewind", "rewind_plan", "rewind_run", "state_at", "timeline",
]
