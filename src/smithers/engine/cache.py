"""The task cache, the run's side: make a task's key, look it up, apply a hit, store a result.

A task with ``cache=`` gets its key when it is ready to start (:meth:`TaskCache.lookup`). A
live entry whose output still validates against the task's model is a **hit**: the output is
written exactly as a finish writes it — attempt (status ``cached``), node ``finished``, the
output row, ``NodeCached`` and ``NodeFinished`` — in one transaction, and the task never
runs. Otherwise the task runs, and its finish stores the entry in the finish's own
transaction (:meth:`TaskCache.remember`), so a crash can never leave a cached output without
its finish or the reverse.

The default key (see :class:`smithers.authoring.cache.CacheKeyContext`) hashes the workflow
name, node id, mode, the task's input — an agent's prompt, a static value, or for a compute
task its function's code, the run input and the outputs the render read — the output
model's JSON schema and the cache version. The reads are taken when the render happens, so
they are the values the task's function was built from.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from types import CodeType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from ..errors import RunError
from ..states import AttemptStatus, EventType, NodeStatus
from ..storage.store import Store, now_ms

if TYPE_CHECKING:
    from ..storage.tx import Tx
    from .persist import Persister
    from .render import Rendered
    from .state import RunState
    from .tree import TaskDescriptor

CACHEABLE_MODES = frozenset({"static", "compute", "agent"})
KEY_FORMAT = 1  # bump when what the default key hashes changes: old entries then simply miss


def digest(value: Any) -> str:
    """SHA-256 (hex) of ``value`` as canonical JSON (sorted keys; anything not JSON by its repr)."""
    text = json.dumps(to_jsonable_python(value, fallback=repr), sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hash_code(code: CodeType, h: Any) -> None:
    """Bytecode, names and constants (nested functions included); not line numbers, so moving a
    function in its file keeps its key, while changing what it does changes it."""
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _hash_code(const, h)
        elif isinstance(const, frozenset):  # set literals: iteration order varies with hash seeds
            h.update(repr(sorted(repr(item) for item in const)).encode())
        else:
            h.update(repr(const).encode())


def function_fingerprint(fn: Any) -> dict[str, Any]:
    """What identifies a compute task's function: its qualified name and a hash of its code
    (``functools.partial``: of its function, plus its bound arguments)."""
    bound: Any = None
    if isinstance(fn, functools.partial):
        bound = {"args": fn.args, "keywords": fn.keywords}
        fn = fn.func
    target = getattr(fn, "__func__", fn)  # a bound method: its function
    code = getattr(target, "__code__", None)
    if code is None:  # a callable object: its class's __call__
        call = type(target).__dict__.get("__call__")
        code = getattr(call, "__code__", None)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__qualname__)}"
    return {"name": name, "code": _code_digest(code) if code is not None else None, "bound": bound}


@functools.lru_cache(maxsize=4096)
def _code_digest(code: CodeType) -> str:
    """Per code object (a fan-out of closures shares one), so a key costs one hash, not one per task."""
    h = hashlib.sha256()
    _hash_code(code, h)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Hit:
    key: str
    value: BaseModel
    from_run_id: str


class TaskCache:
    """One run's use of the task cache. ``lookups`` is off for a run started or resumed with
    ``--no-cache`` (results are still stored, refreshing the entries)."""

    def __init__(self, store: Store, run_id: str, workflow: str) -> None:
        self.store = store
        self.run_id = run_id
        self.workflow = workflow
        self.lookups = True
        self.keys: dict[tuple[str, int], str] = {}  # task key -> its cache key, from its start to its finish
        self.reads: dict[str, Any] = {}  # the latest render's reads: node id -> its outputs (JSON), oldest first
        self._schemas: dict[type[BaseModel], tuple[dict[str, Any], str]] = {}

    # -- keys ----------------------------------------------------------------------------

    def note_render(self, rendered: Rendered, state: RunState) -> None:
        """Snapshot the outputs this render read, if a task of it is cached (else skip the work)."""
        if not any(desc.task.cache is not None for desc in rendered.tasks):
            self.reads = {}
            return
        self.reads = {node_id: [o.model_dump(mode="json") for o in state.outputs(node_id)] for node_id in sorted(rendered.reads)}

    def _schema(self, model: type[BaseModel]) -> tuple[dict[str, Any], str]:
        known = self._schemas.get(model)
        if known is None:
            schema = model.model_json_schema()
            known = self._schemas[model] = (schema, digest(schema))
        return known

    def key_for(self, desc: TaskDescriptor, input_value: Any) -> str:
        """The task's cache key (its ``Cache(key=...)`` function's, when it has one)."""
        cache = desc.task.cache
        assert cache is not None
        schema, schema_hash = self._schema(desc.model)
        task = desc.task
        if desc.mode == "agent":
            task_input: Any = {"prompt": task.prompt}
        elif desc.mode == "static":
            task_input = {"value": task.value}
        else:
            task_input = {"function": function_fingerprint(task.run), "input": input_value, "reads": self.reads}
        default = digest({
            "format": KEY_FORMAT, "workflow": self.workflow, "node": desc.node_id, "mode": desc.mode, "task_input": task_input,
            "schema": schema_hash, "version": cache.version,
        })
        if cache.key is None:
            return default
        from ..authoring.cache import CacheKeyContext  # only a custom key needs it (start-up of `up`)

        context = CacheKeyContext(
            workflow=self.workflow, node_id=desc.node_id, iteration=desc.iteration, mode=desc.mode, prompt=task.prompt,
            value=task.value, input=input_value, reads=self.reads, output_schema=schema, version=cache.version, default_key=default,
        )
        try:
            custom = cache.key(context)
        except Exception as err:  # the key function is user code: its failure is the task's
            raise RunError(
                f"task {desc.node_id!r}: its Cache(key=...) function raised {type(err).__name__}: {err}", retryable=False,
                hint="fix the key function (it gets a smithers.authoring.cache.CacheKeyContext and returns a string)",
            ) from err
        if not isinstance(custom, str):
            raise RunError(
                f"task {desc.node_id!r}: its Cache(key=...) function returned {type(custom).__name__}, not a string",
                retryable=False, hint="return a string, e.g. f\"{kc.node_id}:{kc.prompt}\"",
            )
        return digest({"format": KEY_FORMAT, "custom": custom, "schema": schema_hash, "version": cache.version})

    # -- lookups and hits ----------------------------------------------------------------

    def lookup(self, desc: TaskDescriptor, input_value: Any) -> Hit | None:
        """Make the task's key (kept for :meth:`remember`) and look it up. A miss: no live
        entry, lookups are off, or the stored output no longer validates."""
        if desc.mode not in CACHEABLE_MODES:
            return None
        key = self.key_for(desc, input_value)
        self.keys[desc.key] = key
        if not self.lookups:
            return None
        entry = self.store.cache_entry(key, now_ms())
        if entry is None or entry["output_schema_hash"] != self._schema(desc.model)[1]:
            return None
        try:
            value = desc.model.model_validate_json(entry["output_json"])
        except ValidationError:  # the model's validators changed under the same schema: run it again
            return None
        return Hit(key=key, value=value, from_run_id=entry["from_run_id"])

    def apply_hit(self, persist: Persister, desc: TaskDescriptor, hit: Hit) -> None:
        """Finish the task with the cached output, in one transaction, as a finish would."""
        node = persist.state.nodes[desc.key]
        attempt = node.attempts + 1
        table = self.store.output_table(desc.model)
        with persist.tx() as tx:
            tx.start_attempt(
                desc.node_id, desc.iteration, attempt, {"mode": desc.mode, "cache_key": hit.key, "from_run_id": hit.from_run_id},
            )
            tx.write_output(table, desc.node_id, desc.iteration, hit.value)
            tx.finish_attempt(desc.node_id, desc.iteration, attempt, AttemptStatus.CACHED)
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.FINISHED, attempts=attempt)
            tx.note_cache_hit(hit.key)
            tx.event(
                EventType.NODE_CACHED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt, key=hit.key,
                from_run_id=hit.from_run_id,
            )
            tx.event(EventType.NODE_FINISHED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt, cached=True)
        self.keys.pop(desc.key, None)
        node.attempts = attempt
        persist.state.mark_finished(desc.key, hit.value)

    # -- stores --------------------------------------------------------------------------

    def remember(self, tx: Tx, desc: TaskDescriptor, value: BaseModel) -> None:
        """Store a finished task's output under the key made when it started, inside the
        finish's transaction ``tx``. A task that was not looked up stores nothing."""
        key = self.keys.pop(desc.key, None)
        cache = desc.task.cache
        if key is None or cache is None:
            return
        ttl = cache.ttl_seconds
        tx.put_cache_entry(
            key, workflow=self.workflow, node_id=desc.node_id, output_table=desc.table, output_json=value.model_dump_json(),
            output_schema_hash=self._schema(desc.model)[1], expires_at_ms=tx.ts + int(ttl * 1000) if ttl else None,
        )


__all__ = ["CACHEABLE_MODES", "Hit", "TaskCache", "digest", "function_fingerprint"]
