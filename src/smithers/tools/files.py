"""``read``, ``write`` and ``edit``: file tools confined to the workspace root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field

from . import _patch
from ._core import MARKER_ROOM, ToolContext, ToolError, tool

MAX_LISTING = 2000


def _read_text(path: Path, shown: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ToolError(f"{shown} does not exist") from None
    except IsADirectoryError:
        raise ToolError(f"{shown} is a directory") from None
    except OSError as err:
        raise ToolError(f"cannot read {shown}: {err.strerror or err}") from None
    if b"\0" in data[:8192]:
        raise ToolError(f"{shown} looks like a binary file; only text files can be read and edited")
    return data.decode("utf-8", errors="replace")


def _write_text(path: Path, text: str, shown: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.smithers-tmp")
        tmp.write_text(text, encoding="utf-8", newline="")
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as err:
        raise ToolError(f"cannot write {shown}: {err.strerror or err}") from None


@tool(name="read")
def read(
    path: Annotated[str, Field(description="the file (or directory, to list it), relative to the workspace root")],
    offset: Annotated[int, Field(ge=1, description="the first line to return (1-based)")] = 1,
    limit: Annotated[int | None, Field(ge=1, description="how many lines to return (default: all that fit)")] = None,
    *,
    ctx: ToolContext,
) -> str:
    """Read a text file in the workspace (or list a directory). Long files are cut at the output
    limit; use offset and limit to read further."""
    ws = ctx.workspace
    target = ws.resolve(path)
    shown = ws.relative(target)
    if target.is_dir():
        entries = sorted(os.scandir(target), key=lambda e: e.name)
        names = [f"{e.name}/" if e.is_dir(follow_symlinks=False) else e.name for e in entries[:MAX_LISTING]]
        more = f"\n[{len(entries) - MAX_LISTING} more entries]" if len(entries) > MAX_LISTING else ""
        return ("\n".join(names) or "(empty directory)") + more
    text = _read_text(target, shown)
    if offset == 1 and limit is None and len(text.encode("utf-8")) <= ws.max_output_bytes:
        return text
    lines = text.splitlines(keepends=True)
    chosen = lines[offset - 1 : offset - 1 + limit if limit else None]
    budget = ws.max_output_bytes - MARKER_ROOM
    out: list[str] = []
    used = 0
    for index, line in enumerate(chosen):
        size = len(line.encode("utf-8"))
        if used + size > budget:
            next_line = offset + index
            if not out:  # one line longer than the whole budget: show its start rather than nothing
                cut = line.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
                return f"{cut}\n[line {next_line} alone is {size} bytes; showing its first {budget}. Use grep or bash to look inside it]"
            out.append(f"\n[output truncated at line {next_line - 1} of {len(lines)}: read on with offset={next_line}]")
            break
        out.append(line)
        used += size
    else:
        if offset > 1 or limit:
            end = offset - 1 + len(chosen)
            if not chosen:
                return f"[{shown} has {len(lines)} lines; offset {offset} is past the end]"
            if end < len(lines):
                out.append(f"\n[lines {offset}-{end} of {len(lines)}]")
    return "".join(out)


@tool(name="write", sequential=True)
def write(
    path: Annotated[str, Field(description="the file to create or overwrite, relative to the workspace root")],
    content: Annotated[str, Field(description="the complete new content of the file")],
    *,
    ctx: ToolContext,
) -> str:
    """Create or overwrite a text file in the workspace (parent directories are created)."""
    ws = ctx.workspace
    target = ws.resolve(path)
    shown = ws.relative(target)
    if target.is_dir():
        raise ToolError(f"{shown} is a directory")
    _write_text(target, content, shown)
    return f"wrote {len(content.encode('utf-8'))} bytes to {shown}"


@tool(name="edit", sequential=True)
def edit(
    path: Annotated[str | None, Field(description="the file to edit (optional with a diff that names its files)")] = None,
    old: Annotated[str | None, Field(description="text to replace: must occur exactly once in the file, whitespace included")] = None,
    new: Annotated[str | None, Field(description="the replacement for old")] = None,
    diff: Annotated[str | None, Field(description="a unified diff (diff -u / git diff) to apply instead of old/new")] = None,
    *,
    ctx: ToolContext,
) -> str:
    """Edit files in the workspace, either by replacing one exact occurrence of `old` with `new` in
    `path`, or by applying a unified diff (which may create, change or delete files)."""
    ws = ctx.workspace
    if diff is not None:
        if old is not None or new is not None:
            raise ToolError("pass either diff, or old and new; not both")
        return _apply_diff(ctx, path, diff)
    if path is None or old is None or new is None:
        raise ToolError("an edit needs path, old and new (or a unified diff)")
    if old == "":
        raise ToolError("old is empty: to create or overwrite a file use write")
    target = ws.resolve(path)
    shown = ws.relative(target)
    text = _read_text(target, shown)
    count = text.count(old)
    if count == 0:
        raise ToolError(f"old text not found in {shown}: it must match the file exactly, whitespace and indentation included")
    if count > 1:
        raise ToolError(f"old text occurs {count} times in {shown}: include more surrounding lines so it matches exactly once")
    _write_text(target, text.replace(old, new, 1), shown)
    return f"edited {shown}: replaced 1 occurrence ({old.count(chr(10)) + 1} lines -> {new.count(chr(10)) + 1} lines)"


def _apply_diff(ctx: ToolContext, path: str | None, diff: str) -> str:
    ws = ctx.workspace
    try:
        patches = _patch.parse(diff)
    except _patch.PatchError as err:
        raise ToolError(f"cannot parse the diff: {err}") from None
    if len(patches) > 1 and path is not None:
        named = {p.path for p in patches}
        if path not in named:
            raise ToolError(f"the diff changes {len(patches)} files; leave path out so each file's own header is used")
    results: list[tuple[Path, str, str | None]] = []
    for patch in patches:
        name = path if (path is not None and len(patches) == 1) else patch.path
        if not name:
            raise ToolError("the diff has no file headers (--- a/file, +++ b/file); pass path")
        target = ws.resolve(name)
        shown = ws.relative(target)
        current = _read_text(target, shown) if target.exists() else None
        try:
            updated = _patch.apply(current, patch, shown)
        except _patch.PatchError as err:
            raise ToolError(str(err)) from None
        results.append((target, shown, updated))
    summary = []
    for target, shown, updated in results:  # everything applied in memory first: all files or none
        if updated is None:
            try:
                target.unlink()
            except OSError as err:
                raise ToolError(f"cannot delete {shown}: {err.strerror or err}") from None
            summary.append(f"deleted {shown}")
        else:
            _write_text(target, updated, shown)
            summary.append(f"patched {shown}")
    return "; ".join(summary)
