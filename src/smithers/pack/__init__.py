"""The workflow pack: ``smithers init`` seeds ``.smithers/`` (workflows, prompts, agent tiers,
repository commands) and ``smithers workflow`` lists, runs and checks those workflows.

Workflows use :class:`Project` to read their folder::

    from smithers.pack import Project
    project = Project.of(__file__)
    smart = project.tier("smart")            # fallback chain from .smithers/agents.py
    test = project.commands().get("test")    # from .smithers/config.toml

See docs/workflows.md.
"""

from __future__ import annotations

from .project import Project

__all__ = ["Project"]
