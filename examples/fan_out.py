"""Parallel fan-out: one task per item of a list in the input, at most N at a time.

A dependency audit: for every ``name==version`` line of the input's ``requirements`` list,
``check-<name>`` looks up whether the pinned version is outdated (simulated with a short async
sleep). The checks are built with a list comprehension inside ``Parallel(...,
max_concurrency=2)``, so no more than two run at once; ids come from the data
(``check-requests``), never from list positions, so they stay stable if the list is reordered.
Once every check has finished, ``report`` (fan-in) sums them up. A line without ``==`` fails the
input model, so the run is refused before it starts (exit 4).

Run it:

    smithers up examples/fan_out.py --input '{"requirements": ["requests==2.31.0", "pydantic==2.11.0", "rich==13.9.0", "typer==0.15.0"]}'

Then:

    sqlite3 smithers.db 'select node_id, package, outdated from package_check; select * from audit_report'
"""

import asyncio

from pydantic import BaseModel, field_validator

from smithers import Parallel, Sequence, Task, workflow

LATEST = {"requests": "2.32.3", "pydantic": "2.11.0", "rich": "14.0.0", "typer": "0.15.0", "httpx": "0.28.1"}


class AuditInput(BaseModel):
    requirements: list[str] = ["requests==2.31.0", "pydantic==2.11.0", "rich==13.9.0", "typer==0.15.0"]

    @field_validator("requirements")
    @classmethod
    def pinned(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if "==" not in line:
                raise ValueError(f"{line!r} is not pinned; write it as name==version")
        return lines

    def pins(self) -> dict[str, str]:
        """``{"requests": "2.31.0", ...}`` from the ``name==version`` lines."""
        return dict(line.replace(" ", "").split("==", 1) for line in self.requirements)


class PackageCheck(BaseModel):
    package: str
    pinned: str
    latest: str
    outdated: bool


class AuditReport(BaseModel):
    checked: int
    outdated: list[str]


def check(package: str, pinned: str):
    async def run() -> PackageCheck:
        await asyncio.sleep(0.1)  # stands in for a registry lookup
        latest = LATEST.get(package, pinned)
        return PackageCheck(package=package, pinned=pinned, latest=latest, outdated=latest != pinned)

    return run


@workflow(input=AuditInput)
def audit(ctx):
    packages = ctx.input.pins()
    checks = [ctx.output(f"check-{name}") for name in packages]
    done = all(checks)
    return Sequence(
        Parallel(
            [Task(f"check-{name}", output=PackageCheck, run=check(name, pinned)) for name, pinned in packages.items()],
            max_concurrency=2,
        ),
        done and Task(
            "report",
            output=AuditReport,
            value={"checked": len(checks), "outdated": sorted(c.package for c in checks if c.outdated)},
        ),
    )
