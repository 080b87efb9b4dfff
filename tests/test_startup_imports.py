"""Start-up (issue 8 item 10): `smithers up` of a workflow made of Task/Sequence nodes does not
import what only some workflows need. A behaviour check on ``sys.modules`` after a real run in a
fresh interpreter, no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

WORKFLOW = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Greeting(BaseModel):
    message: str

@workflow
def hello(ctx):
    return Sequence(
        Task("greet", output=Greeting, value={"message": "hello"}),
        Task("shout", output=Greeting, run=lambda: {"message": "HELLO"}),
    )
"""

DRIVER = """
import atexit, json, sys
path = sys.argv[1]
def dump():
    with open(path, "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(dump)
sys.argv = ["smithers", *sys.argv[2:]]
from smithers.cli.main import entry
entry()
"""

LAZY_PREFIXES = (
    "smithers.authoring.human",  # the wait specs and their pydantic models
    "psutil",  # liveness of another process; a new run needs none
    "smithers.agents",
    "smithers.observability",
    "smithers.engine.worktrees",
    "smithers.server",
    "smithers.mcp",
    "smithers.engine.hot",  # hot reload, and the file watcher it uses: only with --hot
    "watchfiles",
    "smithers.authoring.waits",  # the wait specs: only a run with an Approval, HumanTask, Signal or Timer
    "smithers.authoring.scoring",  # Task(scorers=...)
    "smithers.authoring.cache",  # Task(cache=...)
    "smithers.authoring.memory",  # Task(memory=...)
    "smithers.decisions",  # what a waiting run waits for
)


def _modules_after(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    (tmp_path / "wf.py").write_text(textwrap.dedent(WORKFLOW))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    out = tmp_path / "modules.json"
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    full_env = dict(os.environ, SMITHERS_DB=str(tmp_path / "smithers.db"), PYTHONPATH=path)
    full_env.pop("SMITHERS_OTEL_ENABLED", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(out), *args], cwd=tmp_path, env=full_env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout
    return set(json.loads(out.read_text()))


def test_up_of_a_task_only_workflow_imports_only_what_it_uses(tmp_path: Path) -> None:
    modules = _modules_after(tmp_path, "up", "wf.py", "--quiet")
    assert "smithers.engine.loop" in modules  # the run did happen in this process
    loaded = sorted(m for m in modules if m.startswith(LAZY_PREFIXES))
    assert loaded == [], f"imported by a Task-only `smithers up`: {loaded}"


def test_the_lazy_modules_still_load_when_used(tmp_path: Path) -> None:
    """The same names stay importable from where they always were."""
    code = (
        "from smithers import Approval, ApprovalDecision, HumanTask, Signal, Timer, TimerFired\n"
        "from smithers.engine.waits import Waits\n"
        "from smithers import Cache, Task\n"
        "from smithers.scorers import latency\n"
        "from pydantic import BaseModel\n"
        "class Out(BaseModel):\n    x: int\n"
        "task = Task('t', output=Out, value={'x': 1}, cache=True, scorers=[latency('1s')])\n"
        "assert isinstance(task.cache, Cache) and [s.name for s in task.scorers] == ['latency']\n"
        "from smithers.storage.lease import Owner, owner_alive\n"
        "owner = Owner.this_process()\n"
        "assert owner_alive({'owner_id': owner.id, 'owner_host': owner.host, 'owner_pid': owner.pid})\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=src), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_own_start_time_matches_psutil() -> None:
    """Owner ids record this process's start time without psutil; it is the value psutil gives."""
    from smithers.storage.lease import _own_start, _process_start

    assert _own_start() == _process_start(os.getpid())
