"""The ``@workflow`` decorator."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

from pydantic import BaseModel, ValidationError

from ..errors import InputError, RenderError


class Workflow:
    """A workflow: a function of ``ctx`` that returns a tree of nodes, plus its input model."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        name: str | None = None,
        input: type[BaseModel] | None = None,
        max_concurrency: int = 4,
        cwd: str | None = None,
    ) -> None:
        if cwd is not None and (not isinstance(cwd, str) or not cwd):
            raise RenderError(f"@workflow(cwd=...) must be a non-empty path string, got {cwd!r}")
        if input is not None and not (isinstance(input, type) and issubclass(input, BaseModel)):
            raise RenderError(f"@workflow(input=...) must be a pydantic BaseModel subclass, got {input!r}")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise RenderError(f"@workflow(max_concurrency=...) must be a positive int, got {max_concurrency!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.input_model = input
        self.max_concurrency = max_concurrency
        self.cwd = cwd  # the tasks' working directory, relative to the workflow file's folder (None: that folder)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, ctx: Any) -> Any:
        return self.fn(ctx)

    def validate_input(self, raw: Any) -> tuple[Any, dict[str, Any]]:
        """Validate raw input; returns (the value ``ctx.input`` gets, its JSON-able dict form)."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InputError(f"workflow {self.name!r}: input must be a JSON object, got {type(raw).__name__}")
        if self.input_model is None:
            try:
                json.dumps(raw)
            except (TypeError, ValueError) as err:
                raise InputError(f"workflow {self.name!r}: input is not JSON: {err}") from None
            return raw, raw
        try:
            model = self.input_model.model_validate(raw)
        except ValidationError as err:
            raise InputError(
                f"input for workflow {self.name!r} does not match {self.input_model.__name__}:\n"
                + _format_validation(err),
                hint="fix the --input JSON",
                details={"errors": err.errors(include_url=False, include_context=False)},
            ) from None
        return model, model.model_dump(mode="json")

    def working_dir(self, file: Path) -> Path:
        """Where the tasks work: ``cwd`` taken from the folder of ``file`` (default: that folder).

        >>> Workflow(lambda ctx: None, cwd="../..").working_dir(Path("/repo/.smithers/workflows/x.py"))
        PosixPath('/repo')
        """
        folder = file.parent
        return folder if self.cwd is None else Path(os.path.normpath(folder / self.cwd))

    def __repr__(self) -> str:
        return f"<Workflow {self.name}>"


def _format_validation(err: ValidationError) -> str:
    lines = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"  - {loc}: {e['msg']}")
    return "\n".join(lines)


@overload
def workflow(fn: Callable[[Any], Any], /) -> Workflow: ...
@overload
def workflow(
    *, name: str | None = None, input: type[BaseModel] | None = None, max_concurrency: int = 4, cwd: str | None = None
) -> Callable[[Callable[[Any], Any]], Workflow]: ...


def workflow(
    fn: Callable[[Any], Any] | None = None,
    /,
    *,
    name: str | None = None,
    input: type[BaseModel] | None = None,
    max_concurrency: int = 4,
    cwd: str | None = None,
) -> Any:
    """Mark a function of ``ctx`` as a workflow. Works bare and with arguments.

    >>> @workflow
    ... def hello(ctx):
    ...     ...
    >>> hello.name
    'hello'
    """

    def wrap(f: Callable[[Any], Any]) -> Workflow:
        return Workflow(f, name=name, input=input, max_concurrency=max_concurrency, cwd=cwd)

    return wrap(fn) if fn is not None else wrap
