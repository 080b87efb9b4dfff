"""scripts/setup and the agent CLI lockfiles: what a fresh machine relies on.

The guards of scripts/setup run for real (bash, in a copy of the scripts under tmp_path, where they
stop before installing anything); the lockfiles are read as files; the installed CLIs and the Node
they run on are checked where scripts/setup has run (marked slow: the quick loop needs no .agents/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
LOCKDIRS = [SCRIPTS / "agents", SCRIPTS / "agents" / "node"]
EXACT = re.compile(r"^\d+\.\d+\.\d+$")


def _copy_scripts(into: Path) -> Path:
    """A checkout-shaped folder holding only the scripts (they cd to the folder above themselves)."""
    shutil.copytree(SCRIPTS, into / "scripts")
    return into


def _run(script: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_setup_stops_on_a_python_older_than_3_11_before_installing_anything(tmp_path: Path) -> None:
    checkout = _copy_scripts(tmp_path / "checkout")
    old_python = tmp_path / "python3.10"
    # answers --version like Python 3.10 and fails the version check like it
    old_python.write_text('#!/bin/sh\n[ "$1" = "--version" ] && { echo "Python 3.10.12"; exit 0; }\nexit 1\n')
    old_python.chmod(0o755)

    result = _run(checkout / "scripts" / "setup", checkout, PYTHON=str(old_python))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "smithers needs Python >= 3.11; found: Python 3.10.12" in result.stderr
    assert "PYTHON=/path/to/python3.11" in result.stderr
    assert sorted(p.name for p in checkout.iterdir()) == ["scripts"], "nothing may be installed before the check"


@pytest.mark.parametrize("script", ["setup", "install-agents"])
def test_setup_refuses_to_install_through_a_symlinked_agents_folder(tmp_path: Path, script: str) -> None:
    checkout = _copy_scripts(tmp_path / "checkout")
    elsewhere = tmp_path / "another-checkout-agents"
    elsewhere.mkdir()
    (checkout / ".agents").symlink_to(elsewhere)

    result = _run(checkout / "scripts" / script, checkout)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f".agents is a symlink (to {elsewhere})" in result.stderr
    assert list(elsewhere.iterdir()) == [], "nothing may be written through the link"


@pytest.mark.parametrize("lockdir", LOCKDIRS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_agent_lockfiles_pin_every_direct_dependency_exactly(lockdir: Path) -> None:
    manifest = json.loads((lockdir / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((lockdir / "package-lock.json").read_text(encoding="utf-8"))
    declared = {**manifest.get("dependencies", {}), **manifest.get("optionalDependencies", {})}
    assert declared, f"{lockdir}/package.json declares nothing"
    loose = {name: spec for name, spec in declared.items() if not EXACT.match(spec)}
    assert not loose, f"{lockdir}/package.json: pin these exactly (no ^, ~ or ranges): {loose}"
    root = lock["packages"][""]
    assert {**root.get("dependencies", {}), **root.get("optionalDependencies", {})} == declared, (
        f"{lockdir}/package-lock.json is out of date: run `npm install --package-lock-only` there"
    )
    for name, version in declared.items():
        entry = lock["packages"][f"node_modules/{name}"]
        assert entry["version"] == version and entry["integrity"].startswith("sha512-"), (name, entry)


def test_the_agent_lockfile_keeps_the_cli_versions_the_suite_was_written_against() -> None:
    manifest = json.loads((SCRIPTS / "agents" / "package.json").read_text(encoding="utf-8"))
    assert manifest["dependencies"] == {
        "@anthropic-ai/claude-code": "2.1.332",
        "@google/gemini-cli": "0.61.0",
        "@mariozechner/pi-coding-agent": "0.73.1",
        "@openai/codex": "0.171.0",
    }
    node = json.loads((SCRIPTS / "agents" / "node" / "package.json").read_text(encoding="utf-8"))
    majors = {int(version.split(".")[0]) for version in node["optionalDependencies"].values()}
    assert majors == {22}, "Claude Code declares engines node >= 22"


@pytest.mark.slow
def test_the_installed_clis_are_the_locked_ones_and_run_on_node_22() -> None:
    agents = ROOT / ".agents"
    if not (agents / "node" / "node_modules").is_dir() or not (agents / "node_modules").is_dir():
        pytest.fail(f"{agents} has no installed agent CLIs or Node: run scripts/setup")
    lock = json.loads((SCRIPTS / "agents" / "package-lock.json").read_text(encoding="utf-8"))
    for name in lock["packages"][""]["dependencies"]:
        installed = json.loads((agents / "node_modules" / name / "package.json").read_text(encoding="utf-8"))["version"]
        assert installed == lock["packages"][f"node_modules/{name}"]["version"], f"{name}: run scripts/setup"
    # exactly what the CLIs' `#!/usr/bin/env node` runs, in the environment every test inherits
    node = subprocess.run(["/usr/bin/env", "node", "--version"], capture_output=True, text=True, timeout=30, check=True)
    major = int(node.stdout.strip().lstrip("v").split(".")[0])
    assert major >= 22, f"the agent CLIs would run on node {node.stdout.strip()}; tests/conftest.py puts .agents/node first on PATH"
