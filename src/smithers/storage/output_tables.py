"""Pydantic model ⇄ a real SQL table: ``Analysis`` → ``analysis``, one column per top-level field."""

from __future__ import annotations

import datetime
import enum
import functools
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SchemaConflictError

if TYPE_CHECKING:  # pydantic is imported by whoever hands us a model; a read command never pays for it
    from pydantic import BaseModel

KEY_COLUMNS = ("run_id", "node_id", "iteration")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def table_name(model: type[BaseModel]) -> str:
    """``CodeReview`` → ``code_review``.

    >>> from pydantic import BaseModel
    >>> class CodeReview(BaseModel): pass
    >>> table_name(CodeReview)
    'code_review'
    """
    return _CAMEL.sub("_", model.__name__).lower()


def _column_kind(annotation: Any) -> str:
    """'int' | 'real' | 'bool' | 'text' | 'json' for a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _column_kind(args[0]) if len(args) == 1 else "json"
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        return "text" if all(isinstance(v, str) for v in values) else "json"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "real"
    if annotation is str or annotation in (datetime.datetime, datetime.date, datetime.time):
        return "text"  # ISO 8601 text, readable in plain SQL
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "text" if issubclass(annotation, str) else "json"
    return "json"


_SQL_TYPE = {"int": "INTEGER", "real": "REAL", "bool": "INTEGER", "text": "TEXT", "json": "TEXT"}


@dataclass(frozen=True)
class OutputTable:
    """How one model is stored: the table, its field columns and how to encode/decode a row."""

    model: type[BaseModel]
    name: str
    columns: tuple[tuple[str, str], ...]  # (field name, kind)

    @classmethod
    def for_model(cls, model: type[BaseModel]) -> OutputTable:
        name = table_name(model)
        columns = []
        for field, info in model.model_fields.items():
            if field in KEY_COLUMNS:
                raise SchemaConflictError(
                    f"output model {model.__name__} has a field named {field!r}, which is reserved in table {name!r}",
                    hint="rename the field",
                )
            columns.append((field, _column_kind(info.annotation)))
        return cls(model=model, name=name, columns=tuple(columns))

    def ddl(self) -> str:
        cols = ", ".join(f'"{c}" {_SQL_TYPE[k]}' for c, k in self.columns)
        extra = f", {cols}" if cols else ""
        return (
            f'CREATE TABLE IF NOT EXISTS "{self.name}" (run_id TEXT NOT NULL, node_id TEXT NOT NULL, '
            f"iteration INTEGER NOT NULL{extra}, PRIMARY KEY (run_id, node_id, iteration))"
        )

    def upsert_sql(self) -> str:
        names = [*KEY_COLUMNS, *(c for c, _ in self.columns)]
        quoted = ", ".join(f'"{n}"' for n in names)
        marks = ", ".join("?" for _ in names)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c, _ in self.columns)
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f'INSERT INTO "{self.name}" ({quoted}) VALUES ({marks}) ON CONFLICT (run_id, node_id, iteration) {conflict}'

    def encode(self, value: BaseModel) -> list[Any]:
        data = value.model_dump(mode="json")
        out: list[Any] = []
        for field, kind in self.columns:
            v = data.get(field)
            if v is None:
                out.append(None)
            elif kind == "json":
                out.append(json.dumps(v))
            elif kind == "bool":
                out.append(1 if v else 0)
            else:
                out.append(v)
        return out

    def decode(self, row: dict[str, Any]) -> BaseModel:
        data: dict[str, Any] = {}
        for field, kind in self.columns:
            if field not in row:
                continue
            v = row[field]
            if v is not None and kind == "json":
                v = json.loads(v)
            elif v is not None and kind == "bool":
                v = bool(v)
            data[field] = v
        # columns are field names; a model with aliases (Field(alias=...), alias_generator) must
        # still validate them, or a resumed run could not read its own rows back
        if _validates_by_name():
            return self.model.model_validate(data, by_name=True)
        return self.model.model_validate(_by_alias(self.model, data))


@functools.cache
def _validates_by_name() -> bool:
    """pydantic >= 2.11 validates by field name on request."""
    from pydantic import BaseModel

    return "by_name" in inspect.signature(BaseModel.model_validate).parameters


def _by_alias(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """For pydantic < 2.11: key each field by the string alias validation expects."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        info = model.model_fields.get(name)
        alias = None if info is None else (info.validation_alias if info.validation_alias is not None else info.alias)
        out[alias if isinstance(alias, str) else name] = value
    return out


def check_unique_models(tables: dict[str, type[BaseModel]], model: type[BaseModel], node_id: str) -> None:
    """Two different model classes may not map to one table name in a workflow. A model seen for
    the first time is also checked for reserved field names, so that is a render error naming the
    task (exit 4 at the first render) instead of a failure at its first write."""
    name = table_name(model)
    known = tables.get(name)
    if known is None:
        try:
            OutputTable.for_model(model)
        except SchemaConflictError as err:
            raise SchemaConflictError(f"task {node_id!r}: {err.message}", hint=err.hint) from None
        tables[name] = model
    elif known is not model:
        raise SchemaConflictError(
            f"task {node_id!r}: output model {model.__module__}.{model.__qualname__} and "
            f"{known.__module__}.{known.__qualname__} both map to table {name!r}",
            hint="rename one of the two models",
        )
