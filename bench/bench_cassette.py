"""Replaying a 50-agent-task workflow from a cassette (issue 13: ≤ 1 s for `smithers up`).

Run:  python bench/bench_cassette.py [--tasks 50] [--repeats 5] [--json out.json]

The workflow is 50 sequential Claude Code tasks (sequential is the slow shape: no overlap).
The cassette is recorded once through the real `--record` path with a scripted stand-in named
"claude-code" (recording 50 real CLI calls would measure the CLI, not the replay); each call
reports 8 agent events (text, tool use and result, thinking) and token usage, as a real call
does. Then `smithers up wf.py --replay tape.jsonl --quiet` runs in a fresh process and a fresh
database each time, with no `claude` on PATH, after one warm-up replay (bytecode cached as for
an installed package); wall time is measured from the parent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORKFLOW = """
import json, os
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Review(BaseModel):
    file: str
    verdict: str
    score: int

def reply(request):
    for i in range(2):
        request.emit("text", text=f"Looking at part {{i}} of {{request.node_id}}.")
        request.emit("tool_use", id=f"{{request.node_id}}-{{i}}", name="Read", input={{"file_path": f"src/{{request.node_id}}.py"}})
        request.emit("tool_result", id=f"{{request.node_id}}-{{i}}", output="def f():\\n    return 1\\n" * 20, is_error=False)
        request.emit("thinking", text="The function is small and clear.")
    return json.dumps({{"file": request.node_id, "verdict": "ok", "score": 9}})

if os.environ.get("BENCH_RECORD"):
    from smithers.testing import ScriptedAgent
    agent = ScriptedAgent([reply], name="claude-code", session_id="bench-session")
else:
    from smithers.agents import ClaudeCode
    agent = ClaudeCode(model="sonnet")

@workflow
def review_all(ctx):
    return Sequence(*[
        Task(f"file-{{i}}", output=Review, agent=agent, prompt=f"Review src/file-{{i}}.py and give a verdict.", retries=0)
        for i in range({n})
    ])
"""


BASELINE = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Review(BaseModel):
    file: str
    verdict: str
    score: int

@workflow
def review_all(ctx):
    return Sequence(*[Task(f"file-{{i}}", output=Review, run=lambda: {{"file": "f", "verdict": "ok", "score": 9}}) for i in range({n})])
"""


def smithers(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system, from wait4)."""
    with open(cwd / "out.txt", "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "smithers", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"smithers {' '.join(args)} exited {code}:\n{(cwd / 'out.txt').read_text()}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smithers-bench-cassette-") as tmp:
        root = Path(tmp)
        (root / "wf.py").write_text(textwrap.dedent(WORKFLOW.format(n=args.tasks)))
        (root / "baseline.py").write_text(textwrap.dedent(BASELINE.format(n=args.tasks)))
        tape = root / "tape.jsonl"
        # bytecode cached as in any installed package (this dev environment sets PYTHONDONTWRITEBYTECODE,
        # which would make every run compile ~60 modules, ≈ 0.4 s); the cache goes to the temp dir
        base = {k: v for k, v in os.environ.items() if not k.startswith("SMITHERS_") and k != "PYTHONDONTWRITEBYTECODE"}
        base["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        record_wall, _ = smithers(
            ["up", "wf.py", "--record", str(tape), "--quiet"], root, {**base, "BENCH_RECORD": "1", "SMITHERS_DB": str(root / "rec.db")}
        )
        path = os.pathsep.join(p for p in base.get("PATH", "").split(os.pathsep) if not (Path(p) / "claude").exists())
        no_claude = {**base, "PATH": path}
        smithers(["up", "wf.py", "--replay", str(tape), "--quiet"], root, {**no_claude, "SMITHERS_DB": str(root / "warm.db")})
        smithers(["up", "baseline.py", "--quiet"], root, {**base, "SMITHERS_DB": str(root / "warm-base.db")})
        replay, baseline = [], []
        for i in range(args.repeats):  # interleaved, so both see the same machine
            replay.append(
                smithers(["up", "wf.py", "--replay", str(tape), "--quiet"], root, {**no_claude, "SMITHERS_DB": str(root / f"r{i}.db")})
            )
            baseline.append(smithers(["up", "baseline.py", "--quiet"], root, {**base, "SMITHERS_DB": str(root / f"b{i}.db")}))
        result = {
            "tasks": args.tasks, "cassette_lines": len(tape.read_text().splitlines()), "cassette_kb": round(tape.stat().st_size / 1024, 1),
            "record_wall_s": round(record_wall, 3),
            "replay_wall_s": [round(w, 3) for w, _ in replay], "replay_cpu_s": [round(c, 3) for _, c in replay],
            "replay_median_wall_s": round(statistics.median(w for w, _ in replay), 3),
            "replay_median_cpu_s": round(statistics.median(c for _, c in replay), 3),
            "baseline_median_wall_s": round(statistics.median(w for w, _ in baseline), 3),
            "baseline_median_cpu_s": round(statistics.median(c for _, c in baseline), 3),
            "load_average": os.getloadavg()[0], "target_s": 1.0,
        }
    print(f"{args.tasks} agent tasks, cassette {result['cassette_lines']} calls / {result['cassette_kb']} KB")
    print(f"record (scripted stand-in): {result['record_wall_s']:.3f} s wall")
    print(f"replay `smithers up --replay`: median {result['replay_median_wall_s']:.3f} s wall, {result['replay_median_cpu_s']:.3f} s CPU"
          f"  (walls {result['replay_wall_s']}; target ≤ 1 s)")
    print(f"baseline, {args.tasks} compute tasks, same shape: median {result['baseline_median_wall_s']:.3f} s wall, "
          f"{result['baseline_median_cpu_s']:.3f} s CPU  (load average {result['load_average']:.1f})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
