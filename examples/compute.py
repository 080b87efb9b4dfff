"""Compute tasks: plain Python functions, sync or async, with a TaskContext.

An indexing job in two steps. ``scan`` is a *sync* function (it runs in a worker thread so it
never blocks the run loop); it takes a ``TaskContext`` and calls ``tc.heartbeat(data)`` after
every file, so if an attempt dies the next one reads ``tc.last_heartbeat`` and picks up where it
stopped. ``publish`` is an *async* function awaited on the run's event loop, with a timeout.
A function may take no argument or one (the TaskContext), and return a dict or the model.

Run it:

    smithers up examples/compute.py --input '{"files": {"a.py": 120, "b.py": 80, "c.md": 40}}'

Then:

    sqlite3 smithers.db 'select node_id, files, total_lines from scan_report'
"""

import asyncio

from pydantic import BaseModel

from smithers import Sequence, Task, TaskContext, workflow


class IndexInput(BaseModel):
    files: dict[str, int] = {"README.md": 40, "src/app.py": 310, "src/db.py": 125, "tests/test_app.py": 90}


class ScanReport(BaseModel):
    files: int
    total_lines: int
    largest: str
    resumed_from: int  # how many files a previous attempt had already done
    attempt: int


class Published(BaseModel):
    index_key: str
    entries: int


def scan_files(files: dict[str, int]):
    """Build the sync ``run`` function for ``scan``; the closure carries the input."""

    def scan(tc: TaskContext) -> ScanReport:
        names = sorted(files)
        done = (tc.last_heartbeat or {}).get("done", 0)  # progress left by a previous attempt
        total = sum(files[name] for name in names[:done])
        for index in range(done, len(names)):
            total += files[names[index]]
            tc.heartbeat({"done": index + 1})  # cheap and synchronous: call it as often as you like
        largest = max(names, key=lambda name: files[name])
        return ScanReport(files=len(names), total_lines=total, largest=largest, resumed_from=done, attempt=tc.attempt)

    return scan


def publish_index(report: ScanReport):
    async def publish(tc: TaskContext) -> dict:
        await asyncio.sleep(0.05)  # stands in for an upload; the idempotency key makes a retry safe
        return {"index_key": tc.idempotency_key, "entries": report.files}

    return publish


@workflow(input=IndexInput)
def index(ctx):
    report = ctx.output("scan")  # None until scan has finished
    return Sequence(
        Task("scan", output=ScanReport, run=scan_files(ctx.input.files), heartbeat_timeout="30s"),
        report and Task("publish", output=Published, run=publish_index(report), timeout="10s", retries=2),
    )
