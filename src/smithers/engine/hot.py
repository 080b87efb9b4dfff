"""Hot reload: ``smithers up WF --hot`` (and ``resume RUN --hot``) goes on with the edited workflow.

What is watched: the workflow file and the local modules it imports, that is exactly the files
of its source fingerprint (:func:`~smithers.authoring.loader.source_fingerprint`: imports that
resolve under the workflow file's directory), never site-packages or the standard library. A
daemon thread (watchfiles) watches their directories, not recursively: editors often save by
writing a new file and renaming it over the old one, which a watch on the file itself would miss.
Changes to any other file there (the database, a log, an unrelated module) are dropped, and
watchfiles reports a burst of writes (one save) as one change.

When: the run loop calls :meth:`HotReload.reload` at the top of a pass (between scheduling steps,
never inside a commit), as soon as the watcher has woken it.

What a reload does: compare the fingerprint (a save that changed nothing does nothing), import the
workflow again with fresh module objects for it and every local module, validate the stored input
against it and render it. Then, in one transaction: ``WorkflowReloaded {files}``, the run's
recorded source (so that a later ``resume`` compares against the code that ran last) and the new
frame. Finished outputs stay; attempts already running go on with the code they started with;
new attempts, retries included, use the new code. When the import, the input or the render fails:
``WorkflowReloadFailed {error, files}`` (the message names the file and line), ``sys.modules`` is
put back, and the old code goes on; the next save tries again.

Example (what ``ops`` does for ``--hot``)::

    engine.reloader = HotReload(loaded)  # loaded: the LoadedWorkflow the run started with
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..authoring.loader import LoadedWorkflow, load_workflow, source_fingerprint
from ..errors import ErrorCode, LeaseLostError, SmithersError, error_record
from ..states import EventType
from ..storage.output_tables import table_name

if TYPE_CHECKING:
    from watchfiles._rust_notify import RustNotify

    from .loop import RunLoop

DEBOUNCE_MS = 500  # a burst of writes is reported at most this long after it began...
STEP_MS = 80  # ...or as soon as the directory was quiet this long (one editor save is one burst)
POLL_DELAY_MS = 300  # only with WATCHFILES_FORCE_POLLING (network file systems, some containers)
JOIN_TIMEOUT = 5.0  # seconds; the thread notices its stop event within STEP_MS
TRACEBACK_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


class SourceWatcher:
    """Watch a set of files from a daemon thread and call ``on_change(paths)`` (in that thread)
    for each burst of changes to them. :meth:`watch` returns once the operating system's watch is
    in place, so an edit made after it is never missed. A watch that breaks (or cannot start) is
    kept in :attr:`error` and reported through ``on_change(set())``."""

    def __init__(self, on_change: Callable[[set[str]], None]) -> None:
        self.on_change = on_change
        self.files: frozenset[str] = frozenset()  # replaced whole, never mutated: the thread reads it
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._dirs: list[str] = []

    def watch(self, files: Iterable[str]) -> None:
        """Watch exactly ``files`` from now on (the thread restarts only if their directories changed)."""
        self.files = frozenset(files)
        dirs = sorted({os.path.dirname(f) for f in self.files})
        if dirs == self._dirs and self._thread is not None and self._thread.is_alive():
            return
        self.stop()
        self._dirs = dirs
        from watchfiles._rust_notify import RustNotify  # the Rust backend: its constructor sets the watch up

        try:  # (paths, debug, force_polling, poll_delay_ms, recursive, ignore_permission_denied): an unreadable directory is an error
            notify = RustNotify(dirs, False, "WATCHFILES_FORCE_POLLING" in os.environ, POLL_DELAY_MS, False, False)
        except (OSError, RuntimeError) as err:  # a directory vanished, or the OS watch limit is reached
            self._broken(f"cannot watch {', '.join(dirs)}: {type(err).__name__}: {err}")
            return
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(notify, stop), name="smithers-hot-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (and the Rust watcher it owns); returns once they are gone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
            self._thread = None
        self._dirs = []

    def _run(self, notify: RustNotify, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                raw = notify.watch(DEBOUNCE_MS, STEP_MS, 0, stop)
                if isinstance(raw, str):  # "stop"; a thread other than the main one never gets "signal"
                    continue
                files = self.files
                wanted = {path for _, path in raw if path in files}
                if wanted:
                    self.on_change(wanted)
        except Exception as err:  # the watch broke under us: the run goes on, the next safe point says so
            self._broken(f"watching {', '.join(self._dirs)} stopped: {type(err).__name__}: {err}")
        finally:
            notify.close()

    def _broken(self, message: str) -> None:
        self.error = message
        self.on_change(set())


class HotReload:
    """The run loop's :class:`~smithers.engine.loop.Reloader` for ``--hot`` (see the module docstring)."""

    def __init__(self, loaded: LoadedWorkflow) -> None:
        self.spec = loaded.spec
        self.path = loaded.path
        self.fingerprint = source_fingerprint(loaded.path)  # the code the run runs now
        self.failed: dict[str, str] | None = None  # the fingerprint of the last edit that failed to load
        self._due = threading.Event()
        self._wake: Callable[[], object] | None = None
        self.watcher = SourceWatcher(self._changed)

    # -- the Reloader protocol ---------------------------------------------------------------

    def start(self, wake: Callable[[], object]) -> None:
        self._wake = wake
        self.watcher.watch(self.fingerprint)

    def due(self) -> bool:
        return self._due.is_set()

    def stop(self) -> None:
        self.watcher.stop()
        self._wake = None

    def reload(self, engine: RunLoop) -> None:
        """Go on with the edited code if it imports and renders; else say why and keep the old code."""
        self._due.clear()
        if self.watcher.error is not None:  # said once; the watch is not restarted (it would fail again, in a loop)
            message, self.watcher.error = self.watcher.error, None
            error = {"type": "WatchError", "code": str(ErrorCode.WORKFLOW_LOAD), "message": f"hot reload: {message}"}
            self._report_failure(engine, error, [])
        if engine.failure is not None:  # the run is failing: nothing renders any more
            return
        try:
            fingerprint = source_fingerprint(self.path)
        except OSError:  # a file vanished between listing and reading (mid-save): its next event brings us back
            return
        before = self.fingerprint
        changed = sorted(  # a module no longer reached (the file that imports it does not parse) did not change
            p for p in set(before) | set(fingerprint) if before.get(p) != fingerprint.get(p) and (p in fingerprint or not os.path.isfile(p))
        )
        if not changed or fingerprint == self.failed:  # saved unchanged, or the same broken edit again
            return
        try:
            with fresh_modules(set(before) | set(fingerprint), changed):
                self._apply(engine, fingerprint, changed)
        except LeaseLostError:
            raise
        except SmithersError as err:
            self.failed = fingerprint
            self._report_failure(engine, located(err, set(fingerprint)), changed)
            self.watcher.watch(set(before) | set(fingerprint))  # a module the broken edit imports is watched too
            return
        self.fingerprint, self.failed = fingerprint, None
        self.watcher.watch(fingerprint)

    # -- inside -------------------------------------------------------------------------------

    def _changed(self, paths: set[str]) -> None:
        """Called in the watcher thread: mark a reload due and wake the loop."""
        self._due.set()
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(RuntimeError):  # the event loop has just closed: the run is over
                wake()

    def _apply(self, engine: RunLoop, fingerprint: dict[str, str], changed: list[str]) -> None:
        """Import, validate the input, render: one transaction with the event, or nothing changes."""
        run = engine.store.get_run(engine.run_id)
        assert run is not None  # runs are never deleted
        loaded = load_workflow(self.spec)
        input_value, _ = loaded.workflow.validate_input(json.loads(run["input_json"]))
        state = engine.state
        previous = engine.workflow, engine.input_value, dict(state.models)
        engine.workflow, engine.input_value = loaded.workflow, input_value
        for model in loaded.models:  # outputs read back as instances of the new classes
            state.models[table_name(model)] = model
        state.cache.clear()
        try:
            with engine.persist.tx() as tx:
                tx.event(EventType.WORKFLOW_RELOADED, files=changed, workflow=loaded.workflow.name)
                tx.set_run_source(json.dumps(fingerprint))
                engine._render()  # the render (and its frame) joins this transaction
        except BaseException:
            engine.workflow, engine.input_value = previous[0], previous[1]
            state.models.clear()
            state.models.update(previous[2])
            state.cache.clear()
            raise
        if engine.waiting_status is not None and engine.plan is not None and engine.plan.ready:
            engine._resume_from_waiting()  # the new code mounted work to do: the run is running again

    def _report_failure(self, engine: RunLoop, error: dict[str, Any], files: list[str]) -> None:
        with engine.persist.tx() as tx:
            tx.event(EventType.WORKFLOW_RELOAD_FAILED, error=error, files=files)


@contextlib.contextmanager
def fresh_modules(local_files: set[str], changed: Iterable[str]) -> Iterator[None]:
    """Make the next import of the workflow execute it and every local module afresh (a module that
    did not change but took names from one that did gets the new ones too). If the block raises,
    ``sys.modules`` is put back as it was, so the old code goes on with its own modules."""
    names = {os.path.basename(f) for f in local_files}

    def local(module: ModuleType | None) -> bool:
        file = getattr(module, "__file__", None)
        return isinstance(file, str) and os.path.basename(file) in names and os.path.realpath(file) in local_files

    evicted = {name: module for name, module in list(sys.modules.items()) if local(module)}
    for name in evicted:
        del sys.modules[name]
    for path in changed:  # a .pyc records the source's mtime in whole seconds and its size: an edit
        with contextlib.suppress(OSError, ValueError):  # of the same length within that second would load the old code
            os.remove(importlib.util.cache_from_source(path))
    importlib.invalidate_caches()  # a module file created by the edit is found
    before = set(sys.modules)
    try:
        yield
    except BaseException:
        for name in set(sys.modules) - before:
            if local(sys.modules.get(name)):
                del sys.modules[name]
        sys.modules.update(evicted)
        raise


def located(err: SmithersError, local_files: set[str]) -> dict[str, Any]:
    """The error record of a failed reload, its message naming the file and line at fault (the
    innermost frame in a local file of the traceback, when the message does not already)."""
    record = error_record(err)
    trace = err.details.get("traceback")
    if isinstance(trace, str):
        frames = TRACEBACK_FRAME.findall(trace)
        frames = [f for f in frames if f[0] in local_files] or frames
        if frames:
            where = f"{frames[-1][0]}:{frames[-1][1]}"
            if where not in record["message"]:
                record["message"] += f" (at {where})"
    return record


__all__ = ["HotReload", "SourceWatcher", "fresh_modules", "located"]
