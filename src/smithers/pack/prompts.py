"""The pack's prompt templates: Markdown files in ``.smithers/prompts/`` that users edit
without touching Python. The language is deliberately tiny:

- ``{{ name }}`` inserts a value (``{{ name | json }}`` as pretty JSON, ``{{ name | bullets }}``
  a list as ``- item`` lines); single braces are literal, so code samples need no escaping;
- ``{% if name %} ... {% endif %}`` keeps a block when the value is truthy (no nesting);
- leading ``<!-- smithers-... -->`` header lines are dropped.

An unknown name is an error naming the template and the variable (never a silent blank).

>>> render_text("Fix: {{ task }}{% if notes %}\\nNotes: {{ notes | bullets }}{% endif %}", {"task": "x", "notes": ["a"]}, "t.md")
'Fix: x\\nNotes: - a'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import RenderError

_IF = re.compile(r"\{%\s*if\s+([A-Za-z_][A-Za-z0-9_]*)\s*%\}(.*?)\{%\s*endif\s*%\}", re.DOTALL)
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*([a-z]+)\s*)?\}\}")
_HEADER_LINE = re.compile(r"^<!--\s*smithers-[a-z-]+\s*:.*?-->\s*\n", re.MULTILINE)


def render_text(template: str, values: Mapping[str, Any], name: str) -> str:
    def lookup(var: str) -> Any:
        if var not in values:
            passed = ", ".join(sorted(values)) or "nothing"
            raise RenderError(f"prompt {name}: unknown variable {var!r}", hint=f"the workflow passes: {passed}")
        return values[var]

    def fill(match: re.Match[str]) -> str:
        value, flt = lookup(match.group(1)), match.group(2)
        if flt == "json":
            return json.dumps(value, indent=2, default=str)
        if flt == "bullets":
            return "\n".join(f"- {item}" for item in (value or []))
        if flt is not None:
            raise RenderError(f"prompt {name}: unknown filter {flt!r}", hint="use | json or | bullets")
        return "" if value is None else str(value)

    body = _HEADER_LINE.sub("", template).lstrip("\n")
    body = _IF.sub(lambda m: m.group(2) if lookup(m.group(1)) else "", body)
    return _VAR.sub(fill, body)
