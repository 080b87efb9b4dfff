"""Agent memory figures: set and recall on a growing namespace (BM25 and a toy 64-dimension
embedding), and what Remember adds to a task's finish.

    python bench/memory_bench.py [--sizes 1000,10000]

In-process, on a fresh database in a temporary directory; medians of repeated calls.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORDS = [
    "deploy", "release", "lint", "database", "migration", "oncall", "rollback", "review", "python", "ruff",
    "mypy", "token", "cache", "cron", "agent", "prompt", "test", "flaky", "build", "docker", "kubernetes",
    "terraform", "provider", "branch", "merge", "conflict", "schema", "index", "query", "latency", "budget",
    "owner", "incident", "postmortem", "alert", "pager", "dashboard", "metric", "trace", "span", "retry",
    "backoff", "queue", "worker", "lease", "heartbeat",
]


def toy_embed(text: str) -> list[float]:
    """A deterministic 64-dimension bag of hashed words (stands in for a model; costs ~µs)."""
    vector = [0.0] * 64
    for word in text.lower().split():
        vector[hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % 64] += 1.0
    return vector


VOCABULARY = WORDS + [f"term{i}" for i in range(5000)]
ZIPF = [1.0 / rank for rank in range(1, len(VOCABULARY) + 1)]  # word frequencies of a natural text


def fact_text(rng: random.Random) -> str:
    return " ".join(rng.choices(VOCABULARY, weights=ZIPF, k=16))


def median_ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def facts(size: int) -> None:
    from smithers.memory import open as open_memory

    rng = random.Random(size)
    with tempfile.TemporaryDirectory() as tmp:
        with open_memory(Path(tmp) / "smithers.db") as mem:
            start = time.perf_counter()
            for i in range(size):
                mem.set("workflow:bench", f"fact-{i}", fact_text(rng))
            set_ms = (time.perf_counter() - start) * 1000 / size
            queries = [" ".join(fact_text(rng).split()[:4]) for _ in range(20)]
            recall_ms = median_ms(lambda: mem.recall("workflow:bench", rng.choice(queries), k=5), 30)
        with open_memory(Path(tmp) / "smithers.db", embed=toy_embed) as mem:
            start = time.perf_counter()
            mem.recall("workflow:bench", "warm the vectors", k=5)  # embeds and stores every fact once
            first_ms = (time.perf_counter() - start) * 1000
            cosine_ms = median_ms(lambda: mem.recall("workflow:bench", rng.choice(queries), k=5), 10)
    print(f"| {size:,} facts | {set_ms:.3f} ms | {recall_ms:.2f} ms | {first_ms:.0f} ms | {cosine_ms:.1f} ms |")


WORKFLOW = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.memory import Memory, Remember

class Out(BaseModel):
    n: int

REMEMBER = {remember}

@workflow
def chain(ctx):
    return Sequence(*[
        Task(f"t{{i}}", output=Out, run=lambda i=i: {{"n": i}},
             memory=Memory(remember=Remember("workflow:chain", f"t{{i}}")) if REMEMBER else None)
        for i in range({n})
    ])
"""


def remember_overhead(n: int) -> None:
    results = {}
    for remember in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "wf.py"
            path.write_text(textwrap.dedent(WORKFLOW.format(remember=remember, n=n)))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "smithers", "up", str(path), "-q", "--db", str(Path(tmp) / "smithers.db")],
                           check=True, cwd=tmp, capture_output=True)
            results[remember] = time.perf_counter() - start
    extra = (results[True] - results[False]) * 1000 / n
    print(f"| {n:,} sequential compute tasks | {results[False]:.2f} s | {results[True]:.2f} s | {extra:+.3f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    print("| namespace | set (per fact) | recall BM25 k=5 | first cosine recall (embeds all) | cosine recall k=5 |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        facts(size)
    print()
    print("| run | without Remember | with Remember | per task |")
    print("|---|---|---|---|")
    remember_overhead(args.tasks)


if __name__ == "__main__":
    main()
