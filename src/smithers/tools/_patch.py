"""Apply a unified diff (``diff -u`` / ``git diff`` output) to text, exactly: every hunk's context
and removed lines must be found (at the stated line, or the nearest place they match)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
NO_NEWLINE = "\\ No newline at end of file"


class PatchError(ValueError):
    pass


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[tuple[str, str]] = field(default_factory=list)  # (' ' | '-' | '+', text)
    old_no_newline: bool = False
    new_no_newline: bool = False

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"

    @property
    def old(self) -> list[str]:
        return [text for tag, text in self.lines if tag in " -"]

    @property
    def new(self) -> list[str]:
        return [text for tag, text in self.lines if tag in " +"]


@dataclass
class FilePatch:
    old_path: str | None  # None for /dev/null (a new file)
    new_path: str | None  # None for /dev/null (a deleted file)
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str | None:
        return self.new_path or self.old_path


def _header_path(raw: str) -> str | None:
    value = raw.split("\t", 1)[0].strip()
    if value == "/dev/null":
        return None
    if value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    if value.startswith(("a/", "b/")):
        value = value[2:]
    return value


def parse(diff: str) -> list[FilePatch]:
    lines = diff.splitlines()
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            current = FilePatch(_header_path(line[4:]), _header_path(lines[i + 1][4:]))
            patches.append(current)
            i += 2
            continue
        match = HUNK_RE.match(line)
        if match:
            if current is None:
                current = FilePatch(None, None)
                current.old_path = current.new_path = ""  # headerless: the caller names the file
                patches.append(current)
            hunk = Hunk(
                int(match[1]), int(match[2]) if match[2] is not None else 1,
                int(match[3]), int(match[4]) if match[4] is not None else 1,
            )
            i += 1
            old_seen = new_seen = 0
            last_tag = ""
            while i < len(lines) and (old_seen < hunk.old_len or new_seen < hunk.new_len or lines[i].startswith("\\")):
                body = lines[i]
                if body.startswith("\\"):
                    if last_tag == "-":
                        hunk.old_no_newline = True
                    elif last_tag == "+":
                        hunk.new_no_newline = True
                    else:
                        hunk.old_no_newline = hunk.new_no_newline = True
                    i += 1
                    continue
                tag, text = (body[0], body[1:]) if body else (" ", "")
                if tag not in " -+":
                    raise PatchError(f"line {i + 1} of the diff is not part of hunk {hunk.header}: {body[:80]!r}")
                hunk.lines.append((tag, text))
                old_seen += tag in " -"
                new_seen += tag in " +"
                last_tag = tag
                i += 1
            if old_seen != hunk.old_len or new_seen != hunk.new_len:
                raise PatchError(
                    f"hunk {hunk.header} is cut short: it has {old_seen} old and {new_seen} new lines"
                )
            current.hunks.append(hunk)
            continue
        i += 1  # diff --git, index, mode lines, prose around the diff
    if not patches:
        raise PatchError("no hunks found: pass a unified diff with @@ -a,b +c,d @@ headers")
    for patch in patches:
        if not patch.hunks:
            raise PatchError(f"the diff for {patch.path or '(unnamed file)'} has no hunks (renames and binary diffs are not supported)")
    return patches


def _find(lines: list[str], block: list[str], expected: int, start: int) -> int | None:
    """The index where ``block`` occurs in ``lines`` at or after ``start``, nearest to ``expected``."""
    if not block:
        return min(max(expected, start), len(lines))
    last = len(lines) - len(block)
    if last < start:
        return None
    expected = min(max(expected, start), last)
    for distance in range(max(expected - start, last - expected) + 1):
        for at in (expected - distance, expected + distance):
            if start <= at <= last and lines[at:at + len(block)] == block:
                return at
    return None


def apply(text: str | None, patch: FilePatch, name: str) -> str | None:
    """The patched text (None when the patch deletes the file). ``text`` is None for a missing file."""
    if patch.old_path is None and text is not None:
        raise PatchError(f"the diff creates {name}, but it already exists")
    if patch.old_path is not None and patch.old_path != "" and text is None:
        raise PatchError(f"{name} does not exist")
    source = text or ""
    trailing = source.endswith("\n")
    lines = (source[:-1] if trailing else source).split("\n") if source else []
    offset = 0
    start = 0
    for number, hunk in enumerate(patch.hunks, 1):
        old = hunk.old
        expected = (hunk.old_start - 1 if hunk.old_len else hunk.old_start) + offset
        at = _find(lines, old, expected, start)
        if at is None:
            preview = "\n".join(f"{tag}{line}" for tag, line in hunk.lines[:8])
            raise PatchError(
                f"hunk {number} ({hunk.header}) does not apply to {name}: its context and removed lines were not found "
                f"exactly (read the file again and make the diff from its current text)\n{preview}"
            )
        new = hunk.new
        lines[at:at + len(old)] = new
        touches_end = at + len(new) == len(lines)
        if touches_end:
            if hunk.new_no_newline:
                trailing = False
            elif hunk.old_no_newline or not source:
                trailing = True
        offset += len(new) - len(old)
        start = at + len(new)
    if patch.new_path is None:
        if lines:
            raise PatchError(f"the diff deletes {name}, but lines would remain")
        return None
    if not lines:
        return ""
    return "\n".join(lines) + ("\n" if trailing else "")
