"""The command's surface: --version, one JSON document from `up --json`, `cancel` of a run
that is over, option choices in --help, usage errors, and the tables."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from conftest import Project


def test_version_prints_the_installed_version(project: Project) -> None:
    for flag in ("--version", "-V"):
        result = project.cli(flag)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"smithers {version('smithers-orchestrator')}\n"
        assert result.stderr == ""
