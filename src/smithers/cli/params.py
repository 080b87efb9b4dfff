"""Parse simple options without pydantic.

Typer (0.2x) converts every option value through a pydantic ``TypeAdapter`` that it builds on
first use. For a read command that is most of its start-up: importing pydantic, building the
adapters and pydantic's plugin scan of every installed distribution cost more than the command.
Our options are all ``str``, ``int``, ``bool`` or a ``StrEnum`` of choices, so this module
gives each such parameter a plain converter before Typer builds an adapter; anything else (and
a Typer without this hook) keeps Typer's own conversion. Errors read like Typer's and exit 4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

try:  # the hook exists in Typer 0.2x; without it Typer converts every value itself
    from typer._click.core import Context
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam
    from typer._param_types import routes_to_path
except ImportError:  # pragma: no cover - an older or newer Typer
    RuntimeParam = None  # type: ignore[assignment,misc]


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a valid integer") from None


def _to_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("0", "false", "f", "no", "n", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a valid boolean")


def _to_choice(enum: type[Enum]) -> Callable[[Any], Enum]:
    def convert(value: Any) -> Enum:
        if isinstance(value, enum):
            return value
        for member in enum:
            if member.value == value:
                return member
        choices = ", ".join(repr(m.value) for m in enum)
        raise ValueError(f"{value!r} is not one of {choices}.")

    return convert


def _converter(annotation: Any) -> Callable[[Any], Any] | None:
    if annotation is str:
        return _to_str
    if annotation is int:
        return _to_int
    if annotation is bool:
        return _to_bool
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _to_choice(annotation)
    return None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """Typer's conversion contract, fulfilled by a plain function."""

        convert: Callable[[Any], Any]

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value)
            except ValueError as err:
                raise BadParameter(str(err), ctx=ctx, param=param) from None


def parse_without_pydantic(command: Any, argv: list[str]) -> None:
    """Give every simple parameter a plain converter: the root's, and those of the (sub)command
    ``argv`` names. The other commands are never parsed, so they are left alone."""
    if RuntimeParam is None:
        return
    names = [arg for arg in argv if not arg.startswith("-")]
    while command is not None:
        _convert_plainly(command)
        subcommands = getattr(command, "commands", None)
        command = subcommands.get(names.pop(0)) if subcommands and names else None


def _convert_plainly(command: Any) -> None:
    help_option = command.get_help_option(Context(command))  # made (and cached) on first use otherwise
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", True) is not None:
            continue
        if descriptor.file_annotation is not None or descriptor.parameter_info.parser is not None:
            continue
        if param.multiple or param.nargs != 1:
            continue
        info = descriptor.parameter_info
        if getattr(info, "min", None) is not None or getattr(info, "max", None) is not None:
            continue
        if routes_to_path(descriptor.annotation, info):  # exists=, dir_okay=, …: Typer checks the path
            continue
        convert = _converter(descriptor.annotation)
        if convert is not None:
            param._runtime_param = PlainRuntimeParam(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, convert=convert
            )
