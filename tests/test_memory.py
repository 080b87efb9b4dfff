"""Agent memory (DESIGN §10.7, smithers.memory): facts with TTL, namespaces, threads, FTS5/BM25
recall on a small corpus, the embedding hook, Task wiring with Recall/Remember through real runs
(ScriptedAgent, the real CLI), and every `smithers memory` command."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import InProcess, Project

from smithers.errors import MemoryNamespaceError, RenderError, UnknownMemoryKeyError, UserError
from smithers.memory import MemoryStore
from smithers.memory import open as open_memory
from smithers.storage.store import Store

CORPUS = {
    "deploy": "Deploy with `make deploy` after the integration tests pass; never deploy on Fridays.",
    "lint": "We lint Python with ruff, line length 130, and type-check with mypy strict.",
    "database": "The staging database is PostgreSQL 16; migrations run with alembic.",
    "oncall": "The on-call rotation changes every Monday; page through PagerDuty.",
    "release-notes": "Release notes are written from merged pull requests by the release script.",
    "deploy-rollback": "To roll back a deploy run `make rollback VERSION=x`.",
}


@pytest.fixture
def mem(db_target: str):
    """Memory on each backend (SQLite FTS5/BM25, PostgreSQL tsvector/ts_rank)."""
    with open_memory(db_target) as memory:
        yield memory


def _fill(mem: MemoryStore, namespace: str = "workflow:ops") -> None:
    for key, value in CORPUS.items():
        mem.set(namespace, key, value)


# -- facts, recall, TTL, namespaces, threads ------------------------------------------------------


def test_recall_ranks_the_best_match_first_and_respects_k(mem: MemoryStore) -> None:
    _fill(mem)
    best = mem.recall("workflow:ops", "which linter and type checker for python?", k=3)
    assert best[0].key == "lint"
    assert len(best) == 1  # only one fact holds any of those words
    assert mem.recall("workflow:ops", "postgresql migrations", k=5)[0].key == "database"
    deploys = mem.recall("workflow:ops", "how do I roll back a deploy", k=2)
    assert [f.key for f in deploys] == ["deploy-rollback", "deploy"]  # both mention deploy; one also roll back
    assert deploys[0].score is not None and deploys[1].score is not None and deploys[0].score > deploys[1].score
    assert len(mem.recall("workflow:ops", "deploy", k=1)) == 1
    assert len(mem.recall("workflow:ops", "deploy release lint database oncall", k=4)) == 4


def test_recall_weights_the_key_and_treats_query_syntax_as_words(mem: MemoryStore) -> None:
    mem.set("global", "pagerduty", "who to call")
    mem.set("global", "misc", "pagerduty pagerduty is mentioned here")
    assert mem.recall("global", "pagerduty", k=2)[0].key in {"pagerduty", "misc"}
    # FTS5 operators and quotes in a user's query are plain words, never syntax errors
    for query in ('"unbalanced', "AND OR NOT", "deploy -staging", "col:value", "NEAR(a b)", "*"):
        mem.recall("global", query, k=3)
    assert mem.recall("global", "?!", k=3) == []
    with pytest.raises(UserError, match="k must be"):
        mem.recall("global", "x", k=0)


def test_values_are_json_and_searchable_by_their_text(mem: MemoryStore) -> None:
    fact = mem.set("agent:reviewer", "rules", {"style": ["ruff", "black"], "max_line": 130})
    assert fact.value == {"style": ["ruff", "black"], "max_line": 130}
    assert [f.key for f in mem.recall("agent:reviewer", "black formatter", k=5)] == ["rules"]
    mem.set("agent:reviewer", "rules", "replaced")  # a set replaces, and the index follows
    assert mem.recall("agent:reviewer", "black", k=5) == []
    assert mem.get("agent:reviewer", "rules").value == "replaced"  # type: ignore[union-attr]
    with pytest.raises(UserError, match="JSON"):
        mem.set("global", "bad", {1, 2})


def test_a_fact_with_a_short_ttl_expires_and_is_pruned(mem: MemoryStore) -> None:
    mem.set("user:alice", "token", "short-lived secret word", ttl=0.2)
    mem.set("user:alice", "keeper", "stays")
    assert mem.get("user:alice", "token") is not None
    assert [f.key for f in mem.recall("user:alice", "secret", k=5)] == ["token"]
    time.sleep(0.3)
    assert mem.get("user:alice", "token") is None
    assert [f.key for f in mem.list("user:alice")] == ["keeper"]
    assert mem.recall("user:alice", "secret", k=5) == []
    assert mem.namespaces() == [{"namespace": "user:alice", "facts": 1, "messages": 0}]
    conn = mem.store._conn  # plain SQL on whichever backend
    assert conn.execute("SELECT COUNT(*) FROM _smithers_memory_facts WHERE key = 'token'").fetchone() == (1,)  # invisible, not yet deleted
    mem.set("user:alice", "other", "x")  # a write to the namespace prunes it, with its index row
    assert conn.execute("SELECT COUNT(*) FROM _smithers_memory_facts WHERE key = 'token'").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM _smithers_memory_fts WHERE key = 'token'").fetchone() == (0,)
    mem.set("global", "gone", "x", ttl="100ms")
    time.sleep(0.2)
    assert mem.prune() == 1
    with pytest.raises(UserError, match="ttl"):
        mem.set("global", "k", "v", ttl="soon")
    with pytest.raises(UserError, match="positive"):
        mem.set("global", "k", "v", ttl=0)


def test_namespaces_are_isolated(mem: MemoryStore) -> None:
    mem.set("agent:a", "style", "tabs everywhere")
    mem.set("agent:b", "style", "spaces everywhere")
    mem.set("global", "style", "whatever the linter says")
    assert mem.get("agent:a", "style").value == "tabs everywhere"  # type: ignore[union-attr]
    assert [f.value for f in mem.recall("agent:b", "everywhere", k=5)] == ["spaces everywhere"]
    assert mem.forget("agent:a") == 1
    assert mem.get("agent:a", "style") is None
    assert mem.get("agent:b", "style") is not None and mem.get("global", "style") is not None
    assert mem.delete("agent:b", "style") is True and mem.delete("agent:b", "style") is False
    assert [f.namespace for f in mem.list("global")] == ["global"]


@pytest.mark.parametrize("bad", ["", "globals", "team:x", "agent:", "agent", "user:a b", "workflow:x\n", ":x", 42, None])
def test_a_bad_namespace_raises_a_user_error_naming_it(mem: MemoryStore, bad: object) -> None:
    with pytest.raises(MemoryNamespaceError) as caught:
        mem.set(bad, "k", "v")  # type: ignore[arg-type]
    assert repr(bad) in caught.value.message
    assert "workflow:ID" in (caught.value.hint or "")


def test_threads_keep_messages_in_order(mem: MemoryStore) -> None:
    for i, role in enumerate(["user", "assistant", "user", "assistant"]):
        mem.append("user:bob", "support", role, f"message {i}", meta={"i": i} if i == 0 else None)
    mem.append("user:bob", "other", "user", "elsewhere")
    mem.append("user:carol", "support", "user", "carol's own thread")
    messages = mem.messages("user:bob", "support")
    assert [(m.role, m.content) for m in messages] == [("user", "message 0"), ("assistant", "message 1"),
                                                       ("user", "message 2"), ("assistant", "message 3")]
    assert messages[0].meta == {"i": 0} and messages[1].meta is None
    assert [m.content for m in mem.messages("user:bob", "support", limit=2)] == ["message 2", "message 3"]
    assert {t["thread"]: t["messages"] for t in mem.threads("user:bob")} == {"support": 4, "other": 1}
    assert mem.delete_thread("user:bob", "other") == 1
    assert mem.forget("user:bob") == 0  # no facts, but the threads go too
    assert mem.messages("user:bob", "support") == []
    assert [m.content for m in mem.messages("user:carol", "support")] == ["carol's own thread"]
    with pytest.raises(UserError, match="thread name"):
        mem.append("user:bob", "", "user", "x")


def test_require_names_the_missing_key(mem: MemoryStore) -> None:
    with pytest.raises(UnknownMemoryKeyError, match=r"'nope'.*global"):
        mem.require("global", "nope")


# -- the embedding hook ----------------------------------------------------------------------------

TOPICS = {"car": 0, "vehicle": 0, "automobile": 0, "fruit": 1, "apple": 1, "banana": 1, "weather": 2, "rain": 2}


class ToyEmbedding:
    """Words → topic vectors (a synonym table standing in for a model), counting its calls."""

    name = "toy-v1"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, text: str) -> list[float]:
        self.calls.append(text)
        vector = [0.0, 0.0, 0.0, 0.01]
        for word in text.lower().replace(":", " ").split():
            if word.strip(".,?") in TOPICS:
                vector[TOPICS[word.strip(".,?")]] += 1.0
        return vector


def test_an_embedding_function_finds_facts_that_share_no_word_with_the_query(db_target: str) -> None:
    db = db_target
    with open_memory(db) as plain:  # set without embeddings: vectors come at the first recall
        plain.set("global", "garage", "the automobile is parked downstairs")
        plain.set("global", "lunch", "an apple and a banana")
        assert plain.recall("global", "where did I leave my vehicle?", k=1) == []  # BM25: no shared word
    embed = ToyEmbedding()
    with open_memory(db, embed=embed) as mem:
        mem.set("global", "forecast", "rain tomorrow")  # embedded when set
        assert len(embed.calls) == 1
        found = mem.recall("global", "where did I leave my vehicle?", k=1)
        assert [f.key for f in found] == ["garage"] and found[0].score is not None and found[0].score > 0.9
        assert len(embed.calls) == 1 + 2 + 1  # the two older facts once, then the query
        assert mem.recall("global", "fruit", k=3)[0].key == "lunch"
        assert len(embed.calls) == 5  # stored vectors are reused: only the query is embedded
    with _closing(Store.open(db)) as store:
        rows = store._conn.execute("SELECT key, embedding_model FROM _smithers_memory_facts ORDER BY key").fetchall()
    assert rows == [("forecast", "toy-v1"), ("garage", "toy-v1"), ("lunch", "toy-v1")]


# -- Task wiring: real runs --------------------------------------------------------------------------

LEARN = """
import json
from pydantic import BaseModel
from smithers import Task, workflow
from smithers.memory import Memory, Recall, Remember
from smithers.testing import ScriptedAgent

class Lesson(BaseModel):
    topic: str
    lesson: str

def reply(request):
    with open("prompts.ndjson", "a") as out:
        out.write(json.dumps(request.prompt) + "\\n")
    if "Learn about flaky deploys" in request.prompt:
        return {"topic": "deploys", "lesson": "pin the terraform provider version before deploying"}
    return {"topic": "reviews", "lesson": "read the tests first"}

agent = ScriptedAgent([reply])

@workflow
def learn(ctx):
    return Task(
        "learn", output=Lesson, agent=agent, prompt=f"Learn about {ctx.input['topic']}",
        memory=Memory(
            recall=Recall("workflow:learn", lambda ctx: ctx.input["topic"], k=3),
            remember=Remember("workflow:learn", lambda ctx, out: "lesson:" + out.topic),
        ),
    )
"""


def test_run_one_remembers_and_run_two_recalls_into_the_prompt(project: Project, run_id_of) -> None:
    project.write("wf.py", LEARN)
    first = project.cli("up", "wf.py", "--input", '{"topic": "flaky deploys"}')
    assert first.returncode == 0, first.stdout + first.stderr
    run1 = run_id_of(first.stdout)
    second = project.cli("up", "wf.py", "--input", '{"topic": "deploys and reviews"}')
    assert second.returncode == 0, second.stdout + second.stderr
    run2 = run_id_of(second.stdout)

    prompts = [json.loads(line) for line in (project.root / "prompts.ndjson").read_text().splitlines()]
    assert len(prompts) == 2
    assert "<memory" not in prompts[0]  # nothing to recall yet: the prompt is unchanged
    recalled = prompts[1]
    assert '<memory namespace="workflow:learn">' in recalled and "</memory>" in recalled
    assert "- lesson:deploys: " in recalled and "pin the terraform provider version before deploying" in recalled
    assert recalled.index("</memory>") < recalled.index("JSON schema")  # the section sits before the output schema

    with _closing(Store.open(project.db)) as store:
        facts = {(f["key"], f["source_run_id"], f["source_node_id"]) for f in store.memory_facts("workflow:learn", 0)}
        assert facts == {("lesson:deploys", run1, "learn"), ("lesson:reviews", run2, "learn")}
        for run_id in (run1, run2):  # the fact commits with the finish: one transaction, one timestamp, adjacent events
            events = store.events(run_id)
            remembered = next(e for e in events if e["type"] == "MemoryRemembered")
            finished = next(e for e in events if e["type"] == "NodeFinished")
            assert finished["seq"] == remembered["seq"] + 1 and finished["ts_ms"] == remembered["ts_ms"]
        recalls = [e for e in store.events(run2) if e["type"] == "MemoryRecalled"]
        assert [(e["payload"]["keys"], e["payload"]["ranker"]) for e in recalls] == [(["lesson:deploys"], "bm25")]
    shown = project.cli("memory", "get", "workflow:learn", "lesson:deploys", "--json")
    assert json.loads(shown.stdout)["value"] == {"topic": "deploys", "lesson": "pin the terraform provider version before deploying"}


class _closing:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


COMPUTE = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.memory import Memory, Recall, Remember
from smithers.testing import ScriptedAgent

class Note(BaseModel):
    text: str

def embed(text):
    words = text.lower().split()
    return [float(any(w.startswith("veh") or w.startswith("car") for w in words)), float("fruit" in text.lower()), 0.01]

agent = ScriptedAgent([{"text": "done"}])

@workflow
def wf(ctx):
    return Sequence(
        Task("note", output=Note, run=lambda: {"text": "the car is in the garage"},
             memory=Memory(remember=Remember(lambda ctx: "user:" + ctx.input["user"], "where", ttl="1h"), embed=embed)),
        Task("ask", output=Note, agent=agent, prompt="Where is my vehicle?",
             memory=Memory(recall=Recall("user:" + ctx.input["user"], "vehicle location", k=1), embed=embed)),
    )
"""


def test_a_compute_task_remembers_and_an_agent_recalls_by_embedding(any_project: Project, any_inproc: InProcess) -> None:
    project, inproc = any_project, any_inproc  # on both backends
    project.write("wf.py", COMPUTE)
    outcome = inproc.up(raw_input={"user": "ann"})
    assert outcome.status == "finished", outcome.error
    with _closing(project.store()) as store:
        turn = next(e for e in store.events(outcome.run_id) if e["type"] == "AgentTurn")
        assert "- where: " in turn["payload"]["prompt"] and "the car is in the garage" in turn["payload"]["prompt"]
        recalled = next(e for e in store.events(outcome.run_id) if e["type"] == "MemoryRecalled")
        assert recalled["payload"] == {"namespace": "user:ann", "query": "vehicle location", "keys": ["where"], "ranker": "cosine"}
        [fact] = store.memory_facts("user:ann", 0)
        assert fact["expires_at_ms"] is not None and fact["key"] == "where"


BAD_KEY = """
from pydantic import BaseModel
from smithers import Task, workflow
from smithers.memory import Memory, Remember

class Note(BaseModel):
    text: str

@workflow
def wf(ctx):
    return Task("note", output=Note, run=lambda: {"text": "x"}, retries=0,
                memory=Memory(remember=Remember("global", lambda ctx, out: "")))
"""


def test_a_key_function_that_fails_fails_the_attempt_and_writes_nothing(any_project: Project, any_inproc: InProcess) -> None:
    project, inproc = any_project, any_inproc  # on both backends
    project.write("wf.py", BAD_KEY)
    outcome = inproc.up()
    assert outcome.status == "failed"
    assert "Remember key function returned ''" in outcome.error["message"]  # type: ignore[index]
    assert project.query("SELECT COUNT(*) FROM _smithers_memory_facts") == [(0,)]
    assert project.query("SELECT status FROM _smithers_nodes WHERE node_id = 'note'") == [("failed",)]


def test_memory_on_a_task_is_checked_when_it_is_built() -> None:
    from pydantic import BaseModel

    from smithers import Task
    from smithers.memory import Memory, Recall, Remember
    from smithers.testing import ScriptedAgent

    class Out(BaseModel):
        n: int

    with pytest.raises(RenderError, match=r"'sum'.*Recall puts facts into an agent's prompt"):
        Task("sum", output=Out, run=lambda: {"n": 1}, memory=Memory(recall=Recall("global", "x")))
    with pytest.raises(RenderError, match=r"'lit'.*agent or compute task"):
        Task("lit", output=Out, value={"n": 1}, memory=Memory(remember=Remember("global", "k")))
    with pytest.raises(RenderError, match="'team:x' is not a memory namespace"):
        Recall("team:x", "q")
    with pytest.raises(RenderError, match="k must be"):
        Recall("global", "q", k=0)
    with pytest.raises(RenderError, match="ttl"):
        Remember("global", "k", ttl="soon")
    with pytest.raises(RenderError, match="recall=Recall"):
        Memory()
    with pytest.raises(RenderError, match="must be a Memory"):
        Task("a", output=Out, agent=ScriptedAgent(["{}"]), prompt="p", memory=Recall("global", "q"))  # type: ignore[arg-type]


# -- the CLI ------------------------------------------------------------------------------------------


def test_memory_commands(project: Project) -> None:
    def ok(*args: str) -> str:
        result = project.cli("memory", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "set global deploy" in ok("set", "global", "deploy", "make deploy after the tests pass")
    as_json = json.loads(ok("set", "agent:rev", "rules", '{"linter": "ruff"}', "--json-value", "--ttl", "1h", "--json"))
    assert as_json["value"] == {"linter": "ruff"} and as_json["expires_at_ms"] > as_json["updated_at_ms"]
    ok("set", "global", "lint", "ruff and mypy")
    assert ok("get", "global", "deploy") == "make deploy after the tests pass\n"
    assert json.loads(ok("get", "agent:rev", "rules")) == {"linter": "ruff"}
    assert json.loads(ok("get", "global", "lint", "--json"))["key"] == "lint"
    listed = ok("list", "global")
    assert "deploy" in listed and "lint" in listed and "never" in listed
    assert [f["key"] for f in json.loads(ok("list", "global", "--json"))] == ["deploy", "lint"]
    assert [f["key"] for f in json.loads(ok("list", "global", "--prefix", "de", "--json"))] == ["deploy"]
    assert json.loads(ok("list", "--json")) == [
        {"namespace": "agent:rev", "facts": 1, "messages": 0}, {"namespace": "global", "facts": 2, "messages": 0},
    ]
    assert "agent:rev" in ok("list")
    recalled = json.loads(ok("recall", "global", "how do I deploy after tests", "-k", "1", "--json"))
    assert [f["key"] for f in recalled] == ["deploy"] and recalled[0]["score"] > 0
    assert "deploy" in ok("recall", "global", "deploy")
    assert "nothing in global matches" in ok("recall", "global", "zebra")
    with open_memory(project.db) as mem:
        mem.append("user:ann", "chat", "user", "hello there")
    assert "user: hello there" in ok("thread", "user:ann", "chat")
    assert [m["content"] for m in json.loads(ok("thread", "user:ann", "chat", "--json"))] == ["hello there"]
    assert "forgot lint in global" in ok("forget", "global", "lint")
    assert json.loads(ok("forget", "global", "--json")) == {"namespace": "global", "key": None, "forgotten": 1}
    assert json.loads(ok("list", "global", "--json")) == []


def test_memory_commands_exit_4_naming_what_is_wrong(project: Project) -> None:
    project.cli("memory", "set", "global", "known", "v")
    for args, named in (
        (("get", "global", "missing"), "'missing'"),
        (("get", "global", "missing", "--json"), "'missing'"),
        (("forget", "global", "missing"), "'missing'"),
        (("list", "team:x"), "'team:x'"),
        (("recall", "nope", "q"), "'nope'"),
        (("set", "global", "k", "v", "--ttl", "soon"), "'soon'"),
        (("set", "global", "k", "{bad", "--json-value"), "VALUE"),
        (("recall", "global", "q", "-k", "0"), "-k"),
    ):
        result = project.cli("memory", *args)
        assert result.returncode == 4, (args, result.stdout, result.stderr)
        assert named in result.stderr, (args, result.stderr)
    assert project.cli("memory", "get", "global", "known").returncode == 0


def test_memory_commands_honour_db_and_smithers_db(project: Project, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "other.db"
    for args in (("list", "global"), ("recall", "global", "q"), ("thread", "global", "t"), ("forget", "global")):
        assert project.cli("memory", *args, "--db", str(other), "--json").returncode == 0
    missing = project.cli("memory", "get", "global", "where", "--db", str(other))
    assert missing.returncode == 4 and "there is no database at" in missing.stderr
    assert not other.exists(), "only `memory set` creates a database"
    assert project.cli("memory", "set", "global", "where", "other", "--db", str(other)).returncode == 0
    assert project.cli("memory", "get", "global", "where").returncode == 4  # SMITHERS_DB (the project's) has no such fact
    env = project.env(SMITHERS_DB=str(other))
    result = project.cli("memory", "get", "global", "where", env=env)
    assert result.returncode == 0 and result.stdout == "other\n"


FAULT = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.memory import Memory, Remember

class Note(BaseModel):
    text: str

@workflow
def wf(ctx):
    return Sequence(
        Task("first", output=Note, value={"text": "a"}),
        Task("note", output=Note, run=lambda: {"text": "remember me"},
             memory=Memory(remember=Remember("global", lambda ctx: "fact-" + ctx.run_id))),
    )
"""


@pytest.mark.slow
def test_a_kill_before_any_commit_remembers_exactly_when_the_output_is_persisted(project: Project) -> None:
    """SIGKILL right before the N-th COMMIT of a real `smithers up`: the fact exists iff the
    task's output row does, and a resume leaves exactly one of each (one MemoryRemembered)."""
    project.write("wf.py", FAULT)
    killed = 0
    for n in range(2, 20):
        run_id = f"fault-{n}"
        up = project.cli("up", "wf.py", "--run-id", run_id, "-q", env=project.env(SMITHERS_FAULT_BEFORE_COMMIT=str(n)))
        tables = {r[0] for r in project.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = project.query("SELECT COUNT(*) FROM note WHERE run_id = ? AND node_id = 'note'", (run_id,)) if "note" in tables else [(0,)]
        facts = project.query("SELECT COUNT(*) FROM _smithers_memory_facts WHERE key = ?", (f"fact-{run_id}",))
        assert rows == facts, (n, rows, facts)
        if up.returncode == 0:
            break
        assert up.returncode == -9, up.stdout + up.stderr
        killed += 1
        exists = project.query("SELECT COUNT(*) FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0]
        again = project.cli("resume", run_id, "-q") if exists else project.cli("up", "wf.py", "--run-id", run_id, "-q")
        assert again.returncode == 0, again.stdout + again.stderr
        assert project.query("SELECT COUNT(*) FROM note WHERE run_id = ? AND node_id = 'note'", (run_id,)) == [(1,)]
        assert project.query("SELECT value_json, source_run_id FROM _smithers_memory_facts WHERE key = ?", (f"fact-{run_id}",)) == [
            ('{"text":"remember me"}', run_id)
        ]
        remembered = project.query("SELECT COUNT(*) FROM _smithers_events WHERE run_id = ? AND type = 'MemoryRemembered'", (run_id,))
        assert remembered == [(1,)]
    else:
        raise AssertionError("the run never finished without a kill")
    assert killed >= 4  # every commit of the run was a kill point once
