"""`smithers memory ...`: read and edit agent memory (smithers.memory) in the runs' database.

Only ``memory set`` creates a database: pointed at a folder without one, the other commands
read an empty memory (``list``/``recall`` print nothing, ``get``/``forget KEY`` exit 4 saying
there is no database), as ``ps`` and the other read commands do.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import DbOption, JsonOption, app
from .format import short, table, when

if TYPE_CHECKING:
    from ..memory import MemoryStore

memory_app = typer.Typer(
    help="Agent memory: facts and threads that outlive a run (namespaces workflow:ID, agent:NAME, user:ID, global).",
    no_args_is_help=True,
)
app.add_typer(memory_app, name="memory")

NamespaceArg = Annotated[str, typer.Argument(metavar="NAMESPACE", help="global, workflow:ID, agent:NAME or user:ID.")]
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="The fact's key.")]


def _open(db: str | None, *, create: bool = False) -> MemoryStore:
    """The memory of the database; without a database file (and not ``create``), an empty one
    in memory, so that a read never creates ``smithers.db`` in the wrong folder."""
    from ..memory import MemoryStore
    from ..memory import open as open_memory
    from ..storage.store import Store
    from ..storage.target import db_exists, db_target

    target = db_target(db)
    if create or db_exists(target):
        return open_memory(target)
    return MemoryStore(Store.memory(), owns_store=True)


def _require(mem: MemoryStore, namespace: str, key: str, db: str | None) -> Any:
    from ..errors import UnknownMemoryKeyError

    try:
        return mem.require(namespace, key)
    except UnknownMemoryKeyError as err:
        if mem.store.target != ":memory:":
            raise
        from ..storage.target import db_label, db_target

        where = db_label(db_target(db))
        raise UnknownMemoryKeyError(
            f"no fact {key!r} in memory namespace {namespace}: there is no database at {where}",
            hint="run smithers from your project folder, or pass --db / set SMITHERS_DB", details=err.details,
        ) from None


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def _facts_table(facts: list[Any], *, scored: bool = False) -> None:
    headers = ["KEY", "VALUE", "UPDATED", "EXPIRES"]
    rows = [[f.key, short(f.value), when(f.updated_at_ms), when(f.expires_at_ms) if f.expires_at_ms else "never"] for f in facts]
    if scored:
        headers = ["#", "SCORE", *headers]
        rows = [[str(i), f"{f.score:.4g}", *row] for i, (f, row) in enumerate(zip(facts, rows, strict=True), 1)]
    for line in table(headers, rows, right=("#", "SCORE")):
        typer.echo(line)


@memory_app.command("list")
def memory_list(
    namespace: Annotated[
        str | None, typer.Argument(metavar="[NAMESPACE]", help="The namespace; omitted: list the namespaces.")
    ] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only keys that start with this.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """List the live facts of a namespace (or, without one, every namespace and its counts).

    Example: smithers memory list agent:reviewer --json
    """
    with _open(db) as mem:
        if namespace is None:
            spaces = mem.namespaces()
            if json_out:
                _print_json(spaces)
            elif not spaces:
                typer.echo("no memory yet")
            else:
                for line in table(["NAMESPACE", "FACTS", "MESSAGES"], [[s["namespace"], s["facts"], s["messages"]] for s in spaces],
                                  right=("FACTS", "MESSAGES")):
                    typer.echo(line)
            return 0
        facts = mem.list(namespace, prefix=prefix)
        threads = mem.threads(namespace)
    if json_out:
        _print_json([f.to_dict() for f in facts])
        return 0
    if not facts:
        typer.echo(f"no facts in {namespace}")
    else:
        _facts_table(facts)
    if threads:
        listed = ", ".join(f"{t['thread']} ({t['messages']})" for t in threads)
        typer.echo(f"threads: {listed}")
    return 0


@memory_app.command("get")
def memory_get(namespace: NamespaceArg, key: KeyArg, db: DbOption = None, json_out: JsonOption = False) -> int:
    """Print one fact's value (a string as is, anything else as JSON); exit 4 if there is none.

    Example: smithers memory get workflow:nightly last-summary --json
    """
    with _open(db) as mem:
        fact = _require(mem, namespace, key, db)
    if json_out:
        _print_json(fact.to_dict())
    else:
        typer.echo(fact.value if isinstance(fact.value, str) else json.dumps(fact.value, ensure_ascii=False, indent=2))
    return 0


@memory_app.command("set")
def memory_set(
    namespace: NamespaceArg,
    key: KeyArg,
    value: Annotated[str, typer.Argument(metavar="VALUE", help="The value (a string; see --json-value).")],
    ttl: Annotated[str | None, typer.Option("--ttl", help="Expire after this long: 90s, 30m, 1h, 7d.")] = None,
    json_value: Annotated[bool, typer.Option("--json-value", help="Parse VALUE as JSON (a number, list, object...).")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Set a fact (replacing its value if the key exists).

    Example: smithers memory set agent:reviewer style "ruff, line length 130" --ttl 30d
    """
    parsed: Any = value
    if json_value:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as err:
            from ..errors import InputError

            raise InputError(f"VALUE is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}",
                             hint="quote a JSON string as '\"text\"', or drop --json-value to store the text as is") from None
    with _open(db, create=True) as mem:
        fact = mem.set(namespace, key, parsed, ttl=ttl)
    if json_out:
        _print_json(fact.to_dict())
    else:
        expires = f", expires {when(fact.expires_at_ms)}" if fact.expires_at_ms else ""
        typer.echo(f"set {namespace} {key}{expires}")
    return 0


@memory_app.command("recall")
def memory_recall(
    namespace: NamespaceArg,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="Free text; facts are ranked by BM25 over key and value.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="How many facts at most.")] = 5,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """The facts of a namespace that best match a query, best first (what a task's Recall sees).

    Example: smithers memory recall agent:reviewer "which linter" -k 3
    """
    with _open(db) as mem:
        facts = mem.recall(namespace, query, k)
    if json_out:
        _print_json([f.to_dict() for f in facts])
    elif not facts:
        typer.echo(f"nothing in {namespace} matches {query!r}")
    else:
        _facts_table(facts, scored=True)
    return 0


@memory_app.command("forget")
def memory_forget(
    namespace: NamespaceArg,
    key: Annotated[str | None, typer.Argument(metavar="[KEY]", help="One fact; omitted: the whole namespace.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Delete one fact (exit 4 if there is none), or every fact and thread of a namespace.

    Example: smithers memory forget user:alice
    """
    with _open(db) as mem:
        if key is None:
            count = mem.forget(namespace)
        else:
            _require(mem, namespace, key, db)
            mem.delete(namespace, key)
            count = 1
    if json_out:
        _print_json({"namespace": namespace, "key": key, "forgotten": count})
    else:
        typer.echo(f"forgot {key} in {namespace}" if key is not None else f"forgot {count} fact(s) and every thread in {namespace}")
    return 0


@memory_app.command("thread")
def memory_thread(
    namespace: NamespaceArg,
    thread: Annotated[str, typer.Argument(metavar="THREAD", help="The thread's name.")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the newest N messages.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Print a message thread, oldest first.

    Example: smithers memory thread user:alice support --limit 20
    """
    with _open(db) as mem:
        messages = mem.messages(namespace, thread, limit=limit)
    if json_out:
        _print_json([m.to_dict() for m in messages])
    elif not messages:
        typer.echo(f"no messages in thread {thread!r} of {namespace}")
    else:
        for m in messages:
            typer.echo(f"[{when(m.created_at_ms)}] {m.role}: {m.content}")
    return 0
