"""Tools for SDK model agents (:class:`smithers.agents.ModelAgent`), confined to a root directory.

>>> from smithers.tools import read, write, edit, grep, bash, tool
>>> from smithers.agents import ModelAgent
>>> agent = ModelAgent("openai:gpt-5", tools=[read, write, edit, grep, bash])  # doctest: +SKIP

Built-ins:

- ``read(path, offset=1, limit=None)``: a text file (or a directory listing);
- ``write(path, content)``: create or overwrite a file;
- ``edit(path, old, new)`` (``old`` must occur exactly once) or ``edit(diff=...)`` (a unified diff);
- ``grep(pattern, path=".", glob=None, ignore_case=False, fixed=False)``;
- ``bash(command, timeout=None)``: inside bubblewrap, network off unless allowed.

Every path must resolve (symlinks followed) inside the root, which is the task's working
directory unless the agent says otherwise. Output is capped (200 KB by default); ``bash`` and
``grep`` are killed with their whole process group after the timeout (60 s by default).

Custom tools come from :func:`tool`. A tool can also be called directly, as a model would, which
is handy in tests: ``await read({"path": "a.txt"}, workspace=Workspace(root))`` returns a
:class:`ToolOutcome` and reports ``tool_call_started`` / ``tool_call_finished`` to the request.
"""

from __future__ import annotations

from ._core import Tool, ToolContext, ToolError, ToolOutcome, ToolRequest, Workspace, run_tool, tool
from .files import edit, read, write
from .search import grep
from .shell import bash

BUILTIN_TOOLS = (read, write, edit, grep, bash)

__all__ = [
    "BUILTIN_TOOLS", "Tool", "ToolContext", "ToolError", "ToolOutcome", "ToolRequest", "Workspace", "bash", "edit", "grep", "read",
    "run_tool", "tool", "write",
]
