"""Agent tasks, driven by a scripted agent defined right here (no network, no API keys).

An agent is any object with ``async def run(self, request) -> AgentResult``. ``ScriptedAgent``
below answers from a Python function instead of a model, so the example runs offline; swap in
a real agent and the workflow does not change. What it shows:

* the task's prompt arrives in ``request.prompt`` with the output model's JSON schema appended;
* the reply is free text ending in a fenced ```json block; smithers extracts the JSON and
  validates it against the task's model (``IssueTriage``, ``Reply``);
* ``request.emit(kind, **data)`` reports progress; each call becomes an ``AgentEvent`` run event;
* ``agent=[first, second]`` is a fallback chain: attempt n uses entry n. Here the first agent
  replies without any JSON, that attempt fails, and the retry goes to the second agent.

Run it:

    smithers up examples/agent_scripted.py --input '{"title": "App crashes when the upload is empty", "body": "Stack trace attached."}'

Then:

    sqlite3 smithers.db 'select label, priority from issue_triage; select node_id, attempt, status from _smithers_attempts'
"""

import json
from collections.abc import Callable

from pydantic import BaseModel

from smithers import AgentRequest, AgentResult, Retry, Sequence, Task, workflow


class Issue(BaseModel):
    title: str = "App crashes when the upload is empty"
    body: str = "Uploading a 0-byte file shows a stack trace."


class IssueTriage(BaseModel):
    label: str
    priority: int
    summary: str


class Reply(BaseModel):
    text: str


class ScriptedAgent:
    """A stand-in for a model: ``answer(prompt)`` returns the reply text."""

    def __init__(self, name: str, answer: Callable[[str], str]) -> None:
        self.name = name  # shown in the attempt's metadata
        self.answer = answer

    async def run(self, request: AgentRequest) -> AgentResult:
        request.emit("text", text=f"{self.name} is reading {len(request.prompt)} characters")  # → an AgentEvent
        text = self.answer(request.prompt)
        return AgentResult(text=text, usage={"input_tokens": len(request.prompt) // 4, "output_tokens": len(text) // 4})


def fenced(value: dict, preface: str) -> str:
    return f"{preface}\n\n```json\n{json.dumps(value)}\n```"


def triage_answer(prompt: str) -> str:
    title = next((line[len("Title: "):] for line in prompt.splitlines() if line.startswith("Title: ")), "")
    crash = "crash" in prompt.lower()
    verdict = {"label": "bug" if crash else "question", "priority": 1 if crash else 3, "summary": title[:80]}
    return fenced(verdict, "I read the issue. It describes a crash, so it is a bug." if crash else "Looks like a question.")


def reply_answer(prompt: str) -> str:
    return fenced({"text": "Thanks for the report! We can reproduce it and a fix is on the way."}, "Here is a reply:")


triager = ScriptedAgent("scripted-triager", triage_answer)
forgetful = ScriptedAgent("forgetful", lambda prompt: "Sorry, I lost my train of thought.")  # no JSON at all
replier = ScriptedAgent("scripted-replier", reply_answer)


@workflow(input=Issue)
def triage_issue(ctx):
    triage = ctx.output("triage")
    return Sequence(
        Task(
            "triage",
            output=IssueTriage,
            agent=triager,
            prompt=f"Triage this GitHub issue.\nTitle: {ctx.input.title}\n\n{ctx.input.body}",
        ),
        triage and Task(
            "reply",
            output=Reply,
            agent=[forgetful, replier],  # attempt 1: forgetful, attempt 2: replier
            prompt=f"Write a short, friendly reply to an issue labelled {triage.label!r}: {triage.summary}",
            retry=Retry(initial="100ms", jitter=0),
        ),
    )
