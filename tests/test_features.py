"""feature-enum and audit: the inventory is refined pass after pass and saved to
.smithers/specs/features.json; audit reads it (the original's audit got nothing from
feature-enum), runs one agent per group, and its merge names the groups whose task failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project
from test_init_pack import env_with, fake_bin, init

AGENTS = '''
# smithers-source: user
import json
from pathlib import Path
from smithers.testing import ScriptedAgent

ROOT = Path(__file__).resolve().parents[1]

def answer(request):
    with (ROOT / "prompts.log").open("a") as out:
        out.write(json.dumps({"node": request.node_id, "prompt": request.prompt}) + "\\n")
    node = request.node_id
    if node == "feature-enum:scan":
        groups = {"CLI": ["init", "run"], "STORAGE": ["sqlite"]}
        if "Refine this inventory" in request.prompt:
            groups["CLI"].append("doctor")
        return {"feature_groups": groups, "markdown_body": "inventory"}
    if node == "audit:group:storage":
        raise RuntimeError("the storage auditor crashed")
    if node.startswith("audit:group:"):
        return {"group": node.rsplit(":", 1)[1], "summary": "ok", "findings": ["add a test"], "score": 70}
    if node == "audit:merge":
        failed = json.loads(request.prompt.rsplit("Set failed_groups to ", 1)[1].split("\\n")[0].rstrip("."))
        return {"summary": "merged", "failed_groups": failed}
    raise RuntimeError(node)

MISSING = None
smart = [ScriptedAgent([answer], name="scripted")]
cheap_fast = smart_tool = smart
'''


@pytest.fixture
def repo(project: Project, tmp_path: Path) -> tuple[Project, dict[str, str]]:
    env = env_with(project, fake_bin(tmp_path, "claude"))
    init(project, env)
    (project.root / ".smithers" / "agents.py").write_text(AGENTS)
    return project, env


def run(project: Project, env: dict[str, str], *args: str) -> str:
    result = project.cli("workflow", "run", *args, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("run ")][-1].split()[1]


def test_feature_enum_refines_and_saves_then_audit_uses_it(repo) -> None:
    project, env = repo
    missing = project.cli("workflow", "run", "audit", env=env)
    assert missing.returncode == 4 and "feature-enum" in missing.stderr  # calm: says what to run first

    run(project, env, "feature-enum")
    saved = json.loads((project.root / ".smithers" / "specs" / "features.json").read_text())
    assert saved == {"feature_groups": {"CLI": ["init", "run", "doctor"], "STORAGE": ["sqlite"]}, "total_features": 4}

    run_id = run(project, env, "audit", "--input", '{"focus": "error handling"}')
    log = [json.loads(line) for line in (project.root / "prompts.log").read_text().splitlines()]
    cli = next(p for p in log if p["node"] == "audit:group:cli")
    assert "**CLI**" in cli["prompt"] and "- doctor" in cli["prompt"] and "error handling" in cli["prompt"]
    merge = project.query("select summary, failed_groups from feature_merge where run_id = ?", (run_id,))
    assert merge == [("merged", '["STORAGE"]')]
    assert project.query("select node_id from feature_group_result where run_id = ?", (run_id,)) == [("audit:group:cli",)]
