"""Static tasks: literal values, validated by their model and written to real tables.

A release needs a few fixed facts recorded before anything runs: the version being shipped,
the platforms to build for and who signs off. Static tasks (``value=``) are the simplest kind:
the literal is validated against the output model and persisted in one transaction, with no
attempt running in the background. Nested values (lists, dicts) are stored as JSON text.

Run it:

    smithers up examples/static.py --input '{"version": "2.4.0"}'

Then look at the tables (one per output model, named in snake_case):

    sqlite3 smithers.db 'select * from release_plan; select * from sign_off'
"""

from pydantic import BaseModel

from smithers import Sequence, Task, workflow


class ReleaseInput(BaseModel):
    version: str = "2.4.0"
    channel: str = "stable"


class ReleasePlan(BaseModel):
    version: str
    channel: str
    platforms: list[str]  # a nested value: stored as JSON text in its column
    prerelease: bool


class SignOff(BaseModel):
    owner: str
    required_reviews: int


@workflow(input=ReleaseInput)
def release_facts(ctx):
    release = ctx.input
    return Sequence(
        Task(
            "plan",
            output=ReleasePlan,
            value={
                "version": release.version,
                "channel": release.channel,
                "platforms": ["linux-x86_64", "linux-aarch64", "macos-arm64"],
                "prerelease": release.channel != "stable",
            },
        ),
        Task("sign-off", output=SignOff, value=SignOff(owner="release-team", required_reviews=2)),
    )
