"""What a pack workflow reads from its ``.smithers/`` folder while it renders: the agent tiers
(``agents.py``), the repository's commands (``config.toml``) and its prompt templates
(``prompts/*.md``).

>>> project = Project.of(__file__)            # inside .smithers/workflows/implement.py  # doctest: +SKIP
>>> Task("plan", output=Plan, agent=project.tier("smart"), prompt=project.prompt("plan", request=text))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import RenderError, UserError

TIER_NAMES = ("cheap_fast", "smart", "smart_tool")
_AGENT_MODULES: dict[tuple[str, int], ModuleType] = {}


class Project:
    """A ``.smithers/`` folder. ``Project.of(__file__)`` finds the one a workflow file is in (or,
    from any other path, the nearest ``.smithers/`` walking up)."""

    def __init__(self, smithers_dir: Path) -> None:
        self.dir = smithers_dir

    @classmethod
    def of(cls, anchor: str | Path) -> Project:
        start = Path(anchor).resolve()
        for folder in [start, *start.parents]:
            if folder.name == ".smithers" and folder.is_dir():
                return cls(folder)
            if (folder / ".smithers").is_dir():
                return cls(folder / ".smithers")
        raise UserError(f"no .smithers/ folder at or above {start}", hint="run `smithers init` in the repository first")

    @property
    def repo_root(self) -> Path:
        return self.dir.parent

    def agents_module(self) -> ModuleType:
        """``agents.py``, loaded once per content version (an edit is picked up by the next run)."""
        path = self.dir / "agents.py"
        if not path.is_file():
            raise UserError(f"{path} is missing", hint="run `smithers init` to write it")
        key = (str(path), path.stat().st_mtime_ns)
        if key not in _AGENT_MODULES:
            spec = importlib.util.spec_from_file_location(f"_smithers_project_agents_{abs(hash(key))}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as err:  # the user's file: report it as theirs, with the cause
                raise UserError(
                    f"{path} failed to load: {type(err).__name__}: {err}", hint="fix the file, or delete it and run `smithers init`"
                ) from err
            _AGENT_MODULES[key] = module
        return _AGENT_MODULES[key]

    def tier(self, name: str) -> list[Any]:
        """The fallback chain ``name`` (``cheap_fast``, ``smart`` or ``smart_tool``) from ``agents.py``.
        An empty chain stops the workflow before it starts, saying what to install."""
        module = self.agents_module()
        chain = getattr(module, name, None)
        if chain is None:
            raise RenderError(f"{self.dir / 'agents.py'} defines no tier {name!r}", hint=f"define {name} = [SomeAgent(), ...]")
        agents = list(chain) if isinstance(chain, (list, tuple)) else [chain]
        if not agents:
            missing = getattr(module, "MISSING", None) or "install an agent CLI (claude, codex, gemini or pi)"
            raise RenderError(
                f"tier {name!r} in {self.dir / 'agents.py'} has no agent",
                hint=f"{str(missing).strip()}\n(`smithers workflow doctor` explains what is missing)",
            )
        return agents

    def commands(self) -> dict[str, str]:
        """``[commands]`` of ``config.toml``: ``{"test": "...", "lint": "...", "coverage": "..."}`` (those set)."""
        path = self.dir / "config.toml"
        if not path.is_file():
            return {}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path} is not valid TOML: {err}", hint="fix it, or delete it and run `smithers init`") from err
        table = data.get("commands", {})
        if not isinstance(table, dict):
            raise UserError(f"{path}: [commands] must be a table")
        return {str(k): str(v) for k, v in table.items() if isinstance(v, str) and v.strip()}

    def prompt(self, name: str, **values: Any) -> str:
        """Render ``prompts/<name>.md`` with ``values`` (see :mod:`smithers.pack.prompts`)."""
        from .prompts import render_text

        path = self.dir / "prompts" / f"{name}.md"
        if not path.is_file():
            raise RenderError(f"prompt template {path} is missing", hint="run `smithers init` to restore the seeded prompts")
        return render_text(path.read_text(encoding="utf-8"), values, str(path))
