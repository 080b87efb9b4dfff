"""Agent tasks, driven by a scripted agent defined right here (no network, no API keys).

An agent is any object with ``async def run(self, request) -> AgentResult``. ``ScriptedAgent``
below answers from a Python function instead of a model, so the example runs offline; swap in
a real agent and the workflow does not change. What it shows:

* the task's prompt arrives in ``request.prompt`` with the output model's JSON schema appended;
* the reply is free text ending in a fenced ```json block; smithers extracts the JSON and
  validates it against the task's model (``IssueTriage``, ``Reply``);
* a reply whose JSON fails validation gets a *repair turn* quoting the errors (the triager's
  first answer has ``"priority": "P1"`` where an int is required; on turn 2 it fixes it). Repair
  turns happen inside the attempt and do not use up retries;
* ``agent=[first, second]`` is a fallback chain: attempt n uses entry n. Here the first agent
  never answers with JSON (not even when asked for only the JSON), so attempt 1 fails and the
  retry goes to the second agent;
* ``request.emit(kind, **data)`` reports progress; each call becomes an ``AgentEvent`` run event,
  and ``AgentResult.usage`` a ``TokenUsageReported`` event.

Run it:

    smithers up examples/agent_scripted.py --input '{"title": "App crashes when the upload is empty", "body": "Stack trace attached."}'

Then read the transcript and the rows:

    smithers chat RUN_ID
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
    priority: int  # 1 (urgent) … 4
    summary: str


class Reply(BaseModel):
    text: str


class ScriptedAgent:
    """A stand-in for a model: ``answer(request)`` returns the reply text."""

    def __init__(self, name: str, answer: Callable[[AgentRequest], str]) -> None:
        self.name = name  # recorded on each attempt and in its events
        self.answer = answer

    async def run(self, request: AgentRequest) -> AgentResult:
        request.emit("text", text=f"{self.name}: turn {request.turn}, {len(request.prompt)} characters of prompt")
        text = self.answer(request)
        return AgentResult(text=text, usage={"input_tokens": len(request.prompt) // 4, "output_tokens": len(text) // 4})


def fenced(value: dict, preface: str) -> str:
    return f"{preface}\n\n```json\n{json.dumps(value)}\n```"


def triage_answer(request: AgentRequest) -> str:
    title = next((line[len("Title: "):] for line in request.prompt.splitlines() if line.startswith("Title: ")), "")
    bug = "crash" in request.prompt.lower()
    if request.turn == 1:  # a sloppy first answer: priority as a string, which fails the model
        return fenced({"label": "bug" if bug else "question", "priority": "P1", "summary": title}, "Triage done.")
    return fenced({"label": "bug" if bug else "question", "priority": 1 if bug else 3, "summary": title}, "Fixed the priority:")


def reply_answer(request: AgentRequest) -> str:
    return fenced({"text": "Thanks for the report! We can reproduce it and a fix is on the way."}, "Here is a reply:")


triager = ScriptedAgent("scripted-triager", triage_answer)
forgetful = ScriptedAgent("forgetful", lambda request: "Sorry, I lost my train of thought.")  # never any JSON
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
