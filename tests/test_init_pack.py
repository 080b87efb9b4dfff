"""`smithers init`: the seeded .smithers/ folder, agent tiers from the CLIs on PATH and the keys
set, repository commands detected from build files, and the ownership rules on re-init."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import Project

from smithers.pack.registry import headers

KEYS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY",
        "GEMINI_API_KEY", "GOOGLE_API_KEY")


def fake_bin(tmp: Path, *names: str) -> Path:
    """A PATH folder holding executables with the agent CLIs' names (detection only looks them up)."""
    folder = tmp / "fakebin"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        exe = folder / name
        exe.write_text("#!/bin/sh\necho fake\n")
        exe.chmod(0o755)
    return folder


def env_with(project: Project, path: Path, **keys: str) -> dict[str, str]:
    env = project.env()
    for key in KEYS:
        env.pop(key, None)
    env["PATH"] = str(path)
    env.update(keys)
    return env


def init(project: Project, env: dict[str, str], *args: str) -> dict:
    result = project.cli("init", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def load_tiers(path: Path) -> dict[str, list[str]]:
    """agents.py run in a fresh interpreter: each tier's agents as (class, model)."""
    code = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('agents', sys.argv[1]); m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "print(json.dumps({t: [f'{type(a).__name__}:{getattr(a, \"model\", None)}' for a in getattr(m, t)] for t in "
        "('cheap_fast', 'smart', 'smart_tool')} | {'MISSING': m.MISSING}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_init_writes_the_layout_with_headers_and_a_manifest(project: Project, tmp_path: Path) -> None:
    result = init(project, env_with(project, fake_bin(tmp_path, "claude")))
    root = project.root / ".smithers"
    for rel in ("workflows/hello.py", "workflows/implement.py", "workflows/review.py", "prompts/implement.md", "prompts/review.md",
                "agents.py", "config.toml", ".gitignore", "tickets/.gitkeep"):
        assert (root / rel).is_file(), rel
        assert rel in result["wrote"]
    for rel in ("workflows/implement.py", "agents.py", "config.toml", ".gitignore", "prompts/implement.md"):
        found = headers((root / rel).read_text())
        assert found.get("smithers-source") == "seeded", rel
        assert found.get("smithers-display-name"), rel
    assert (root / "prompts/implement.md").read_text().startswith("<!-- smithers-source: seeded -->")
    manifest = json.loads((root / ".seeded.json").read_text())["files"]
    assert set(manifest) == set(result["wrote"])
    assert "runs/" in (root / ".gitignore").read_text().splitlines()
    assert not (project.root / "smithers.db").exists(), "init touches no database"


def test_tiers_follow_the_clis_on_path_most_capable_first(project: Project, tmp_path: Path) -> None:
    init(project, env_with(project, fake_bin(tmp_path, "codex", "claude")))
    tiers = load_tiers(project.root / ".smithers" / "agents.py")
    assert tiers["smart"] == ["ClaudeCode:None", "Codex:None"]
    assert tiers["smart_tool"] == ["ClaudeCode:None", "Codex:None"]
    assert tiers["cheap_fast"] == ["ClaudeCode:haiku", "Codex:None"]
    assert tiers["MISSING"] is None


def test_an_api_key_without_a_cli_gives_a_model_agent(project: Project, tmp_path: Path) -> None:
    init(project, env_with(project, fake_bin(tmp_path), OPENAI_API_KEY="sk-test-not-a-real-key"))
    text = (project.root / ".smithers" / "agents.py").read_text()
    assert "sk-test" not in text, "a key's value is never written"
    tiers = load_tiers(project.root / ".smithers" / "agents.py")
    assert tiers["smart"] == ["ModelAgent:openai:gpt-5"]
    assert tiers["cheap_fast"] == ["ModelAgent:openai:gpt-5-mini"]


def test_with_no_agent_init_still_writes_a_calm_valid_agents_file(project: Project, tmp_path: Path) -> None:
    env = env_with(project, fake_bin(tmp_path))
    result = project.cli("init", env=env)
    assert result.returncode == 0, result.stderr
    assert "agents: none found yet" in result.stdout
    tiers = load_tiers(project.root / ".smithers" / "agents.py")
    assert tiers["smart"] == [] and "npm install -g @anthropic-ai/claude-code" in tiers["MISSING"]
    # a workflow that needs an agent stops before starting, once, saying what to install
    (project.root / ".smithers" / "config.toml").write_text(f'[commands]\ntest = "{sys.executable} -c pass"\n')
    run = project.cli("workflow", "run", "implement", "--prompt", "x", env=env, timeout=60)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "tier 'smart'" in run.stderr and "has no agent" in run.stderr and "claude" in run.stderr
    assert not project.query("select run_id from _smithers_runs"), "no run was started"


SAMPLES = {
    "python": ({"pyproject.toml": "[project]\nname='x'\n[tool.pytest.ini_options]\n[tool.ruff]\n[project.optional-dependencies]\n"
                "dev=['pytest-cov']\n"},
               {"test": "python -m pytest -q", "lint": "python -m ruff check .", "coverage": "python -m pytest -q --cov"}),
    "python-uv": ({"pyproject.toml": "[project]\nname='x'\n", "uv.lock": "", "tests/test_a.py": "def test(): pass\n"},
                  {"test": "uv run pytest -q"}),
    "node-pnpm": ({"package.json": json.dumps({"scripts": {"test": "vitest", "lint": "eslint .", "coverage": "vitest --coverage"}}),
                   "pnpm-lock.yaml": ""},
                  {"test": "pnpm test", "lint": "pnpm run lint", "coverage": "pnpm run coverage"}),
    "node-placeholder": ({"package.json": json.dumps({"scripts": {"test": 'echo "Error: no test specified" && exit 1'}})}, {}),
    "makefile-wins": ({"Makefile": "lint:\n\truff check\ntest: build\n\tpytest\nX := 1\n", "go.mod": "module x\n"},
                      {"test": "make test", "lint": "make lint", "coverage": "go test -cover ./..."}),
    "cargo": ({"Cargo.toml": "[package]\nname='x'\n"}, {"test": "cargo test", "lint": "cargo clippy -- -D warnings"}),
    "go": ({"go.mod": "module x\n"}, {"test": "go test ./...", "lint": "go vet ./...", "coverage": "go test -cover ./..."}),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_repository_commands_are_detected(project: Project, tmp_path: Path, sample: str) -> None:
    files, expected = SAMPLES[sample]
    for rel, content in files.items():
        project.write(rel, content)
    result = init(project, env_with(project, fake_bin(tmp_path)))
    assert {kind: c["command"] for kind, c in result["commands"].items()} == expected
    config = tomllib.loads((project.root / ".smithers" / "config.toml").read_text())
    assert config["commands"] == expected


def test_reinit_refreshes_untouched_files_and_keeps_changed_ones(project: Project, tmp_path: Path) -> None:
    nothing = env_with(project, fake_bin(tmp_path))
    init(project, nothing)
    root = project.root / ".smithers"
    prompt = root / "prompts" / "implement.md"
    prompt.write_text(prompt.read_text() + "\nAlways write type hints.\n")
    mine = root / "workflows" / "mine.py"
    mine.write_text("# my own workflow\n")

    with_claude = env_with(project, fake_bin(tmp_path, "claude"))
    again = init(project, with_claude)
    assert "agents.py" in again["updated"], "agents.py was untouched, so a new detection refreshes it"
    assert "ClaudeCode()" in (root / "agents.py").read_text()
    assert again["kept"] == ["prompts/implement.md"]
    assert prompt.read_text().endswith("Always write type hints.\n")
    assert mine.read_text() == "# my own workflow\n"

    (root / "agents.py").write_text((root / "agents.py").read_text().replace("ClaudeCode()", 'ClaudeCode(model="opus")'))
    third = init(project, nothing)
    assert "agents.py" in third["kept"], "a changed agents.py is the user's: re-detection does not overwrite it"
    assert 'model="opus"' in (root / "agents.py").read_text()


def test_force_replaces_changed_seeded_files_keeping_a_backup_and_never_touches_user_files(project: Project, tmp_path: Path) -> None:
    env = env_with(project, fake_bin(tmp_path, "claude"))
    init(project, env)
    root = project.root / ".smithers"
    review = root / "workflows" / "review.py"
    original = review.read_text()
    review.write_text(original + "\n# tweaked\n")
    owned = root / "prompts" / "review.md"
    owned.write_text(owned.read_text().replace("smithers-source: seeded", "smithers-source: user") + "mine\n")
    mine = root / "workflows" / "mine.py"
    mine.write_text("# mine\n")

    forced = init(project, env, "--force")
    assert forced["replaced"] == ["workflows/review.py"]
    assert review.read_text() == original
    assert (root / "workflows" / "review.py.bak").read_text().endswith("# tweaked\n")
    assert "prompts/review.md" in forced["kept"] and owned.read_text().endswith("mine\n")
    assert mine.read_text() == "# mine\n"
    listed = project.cli("workflow", "list", "--json", env=env)
    assert "review.py.bak" not in listed.stdout


def test_a_damaged_manifest_makes_init_careful_not_destructive(project: Project, tmp_path: Path) -> None:
    env = env_with(project, fake_bin(tmp_path))
    init(project, env)
    root = project.root / ".smithers"
    (root / ".seeded.json").write_text("{not json")
    hello = root / "workflows" / "hello.py"
    hello.write_text(hello.read_text() + "# edited\n")
    result = init(project, env)
    assert result["kept"] == ["workflows/hello.py"] and hello.read_text().endswith("# edited\n")
    assert json.loads((root / ".seeded.json").read_text())["version"] == 1


def test_templates_ship_inside_the_package() -> None:
    from smithers.pack.registry import PLANNED_WORKFLOWS, seeded_files, seeded_workflow_ids

    files = seeded_files()
    assert {"workflows/hello.py", "workflows/implement.py", ".gitignore"} <= set(files)
    assert set(seeded_workflow_ids()) - {"hello"} <= set(PLANNED_WORKFLOWS)
    assert os.path.basename(next(iter(files))) != "__init__.py"


def test_an_api_key_next_to_its_own_cli_adds_no_second_agent(project: Project, tmp_path: Path) -> None:
    init(project, env_with(project, fake_bin(tmp_path, "claude"), ANTHROPIC_API_KEY="sk-test", OPENAI_API_KEY="sk-test"))
    tiers = load_tiers(project.root / ".smithers" / "agents.py")
    assert tiers["smart"] == ["ClaudeCode:None", "ModelAgent:openai:gpt-5"]  # claude covers the Anthropic key
