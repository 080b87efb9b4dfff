"""Import a workflow file and fingerprint its source (the file and its relative imports)."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from ..errors import WorkflowLoadError
from .workflow import Workflow


@dataclass(frozen=True)
class LoadedWorkflow:
    workflow: Workflow
    path: Path
    spec: str  # "path.py" or "path.py:name", what `resume` reloads
    models: tuple[type[BaseModel], ...]  # BaseModel classes visible in the module, for reading outputs back


def split_spec(spec: str) -> tuple[Path, str | None]:
    path, _, name = spec.rpartition(":") if spec.count(":") and not spec.endswith(".py") else (spec, "", "")
    if not path:
        path, name = spec, ""
    return Path(path), (name or None)


def load_workflow(spec: str) -> LoadedWorkflow:
    """Import ``path.py`` or ``path.py:name`` and return its workflow.

    Raises WorkflowLoadError (exit 4) naming the file for: a missing file, a syntax or
    import error, no ``@workflow``, or several without ``:name``.
    """
    path, name = split_spec(spec)
    path = path.expanduser().resolve()
    if not path.is_file():
        raise WorkflowLoadError(f"workflow file not found: {path}", hint="pass the path of a .py file with a @workflow function")
    module_name = "smithers_workflow_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise WorkflowLoadError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    parent = str(path.parent)
    added = parent not in sys.path
    if added:
        sys.path.insert(0, parent)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(module_name, None)
        raise WorkflowLoadError(
            f"{err.filename or path}:{err.lineno}: syntax error: {err.msg}", hint="fix the syntax error and run again"
        ) from None
    except Exception as err:  # the user's module raised while importing: report it, with its traceback
        sys.modules.pop(module_name, None)
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-3))
        raise WorkflowLoadError(
            f"{path}: importing the workflow file raised {type(err).__name__}: {err}",
            hint="fix the error below and run again",
            details={"traceback": tb},
        ) from None
    found = {obj.name: obj for obj in vars(module).values() if isinstance(obj, Workflow)}
    if name is not None:
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            raise WorkflowLoadError(f"{path}: no workflow named {name!r} (found: {known})")
        chosen = found[name]
    elif len(found) == 1:
        chosen = next(iter(found.values()))
    elif not found:
        raise WorkflowLoadError(
            f"{path}: no @workflow function found",
            hint="decorate the function that returns the task tree with @workflow (from smithers import workflow)",
        )
    else:
        raise WorkflowLoadError(
            f"{path} has several workflows ({', '.join(sorted(found))}); choose one with {path.name}:NAME",
            hint=f"for example: smithers up {path}:{sorted(found)[0]}",
        )
    models = tuple(
        obj for obj in vars(module).values() if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel
    )
    spec_out = str(path) if name is None else f"{path}:{name}"
    return LoadedWorkflow(workflow=chosen, path=path, spec=spec_out, models=models)


def source_fingerprint(path: Path) -> dict[str, str]:
    """sha256 of the entry file and every file it imports from its own directory tree, by path."""
    root = path.parent
    seen: dict[str, str] = {}
    pending = [path]
    while pending:
        current = pending.pop()
        key = str(current)
        if key in seen or not current.is_file():
            continue
        data = current.read_bytes()
        seen[key] = hashlib.sha256(data).hexdigest()
        try:
            tree = ast.parse(data, filename=key)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            for target in _local_imports(node, current.parent, root):
                pending.append(target)
    return seen


def _local_imports(node: ast.AST, here: Path, root: Path) -> list[Path]:
    names: list[tuple[Path, str]] = []
    if isinstance(node, ast.Import):
        names = [(root, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = here
        for _ in range(max(node.level - 1, 0)):
            base = base.parent
        start = base if node.level else root
        names = [(start, node.module)] if node.module else [(start, alias.name) for alias in node.names]
    out = []
    for start, dotted in names:
        candidate = start.joinpath(*dotted.split("."))
        for option in (candidate.with_suffix(".py"), candidate / "__init__.py"):
            if option.is_file():
                out.append(option.resolve())
    return out
