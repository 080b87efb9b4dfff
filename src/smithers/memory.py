"""Agent memory: facts and message threads that outlive a run, in the runs' own database.

>>> from smithers import memory
>>> with memory.open("smithers.db") as mem:                         # doctest: +SKIP
...     mem.set("agent:reviewer", "style", "we use ruff, line length 130", ttl="30d")
...     [f.key for f in mem.recall("agent:reviewer", "which linter do we use?", k=3)]
['style']

Namespaces say whose memory it is: ``workflow:ID`` (a workflow's, ID usually its name),
``agent:NAME``, ``user:ID`` and ``global``; any other form raises
:class:`~smithers.errors.MemoryNamespaceError` naming it.

- **Facts**: ``set/get/delete/list`` a JSON value under a key, optionally for a ``ttl``
  (``"90s"``, ``"1h"``, ``"7d"`` or seconds). An expired fact is invisible at once and deleted
  by the next write to its namespace (or :meth:`MemoryStore.prune`).
- **Threads**: :meth:`MemoryStore.append` a message (role, content) to a named thread of a
  namespace; :meth:`MemoryStore.messages` lists it, oldest first.
- **Recall**: :meth:`MemoryStore.recall` returns the ``k`` facts that best match a free-text
  query, ranked by SQLite FTS5's BM25 over each fact's key (weighted double) and value text. No
  embedding service is needed. With ``open(embed=fn)`` (``fn(text) -> list[float]``) recall
  instead ranks every live fact of the namespace by cosine similarity, so it also finds facts
  that share no word with the query; vectors are computed once per fact and stored.

On a task, :class:`Memory` with :class:`Recall` and :class:`Remember` puts recalled facts into
an agent's prompt and remembers the validated output (see ``docs/cache-memory-cron.md``)::

    Task("plan", output=Plan, agent=claude, prompt="Plan the release",
         memory=Memory(recall=Recall("workflow:release", "release pitfalls"),
                       remember=Remember("workflow:release", "last-plan")))
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .authoring.memory import Embedder, Memory, Recall, Remember, check_key, check_namespace, embedder_name
from .authoring.policies import Duration, parse_duration
from .engine.memory import Fact, encode_value, pack_vector, recall, value_text, vector_of
from .errors import UnknownMemoryKeyError, UserError
from .storage.store import Store, now_ms
from .storage.target import db_target

Facts = list[Fact]


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a thread."""

    namespace: str
    thread: str
    message_id: int
    role: str
    content: str
    created_at_ms: int
    meta: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Message:
        return cls(
            namespace=row["namespace"], thread=row["thread"], message_id=row["message_id"], role=row["role"],
            content=row["content"], created_at_ms=row["created_at_ms"], meta=json.loads(row["meta_json"]) if row["meta_json"] else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Messages = list[Message]  # (the aliases: inside MemoryStore, `list` names its method)
Rows = list[dict[str, Any]]


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise UserError(f"{value!r} is not a {what}", hint=f"a {what} is a non-empty string of at most 200 characters")
    return value


class MemoryStore:
    """Facts and threads on a smithers database. Open with :func:`open` (or wrap a
    :class:`~smithers.storage.store.Store` you already have); use as a context manager.

    >>> mem = MemoryStore(Store.memory())
    >>> mem.set("global", "motto", "ship small").key
    'motto'
    >>> mem.get("global", "motto").value
    'ship small'
    """

    def __init__(self, store: Store, *, embed: Embedder | None = None, owns_store: bool = False) -> None:
        if embed is not None and not callable(embed):
            raise UserError(f"embed= must be a function of text returning a vector, got {embed!r:.60}")
        self.store = store
        self.embed = embed
        self._owns_store = owns_store

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- facts --------------------------------------------------------------------------------------

    def set(self, namespace: str, key: str, value: Any, ttl: Duration | None = None) -> Fact:
        """Store ``value`` (any JSON value) as fact ``key`` of ``namespace``, replacing it if it
        exists; it expires after ``ttl`` (None: never)."""
        namespace, key = check_namespace(namespace), check_key(key)
        try:
            seconds = parse_duration(ttl, field="ttl")
        except ValueError as err:
            raise UserError(str(err), hint="e.g. ttl='1h', '7d' or 90 (seconds)") from None
        if seconds is not None and seconds <= 0:
            raise UserError(f"ttl must be positive, got {ttl!r}", hint="omit ttl for a fact that never expires")
        value_json, text = encode_value(value), value_text(value)
        packed = model = None
        if self.embed is not None:
            packed, model = pack_vector(vector_of(self.embed(f"{key}: {text}"), f"fact {key!r}")), embedder_name(self.embed)
        with self.store.tx() as tx:
            expires = None if seconds is None else tx.ts + int(seconds * 1000)
            tx.memory_set(namespace, key, value_json=value_json, value_text=text, expires_at_ms=expires,
                          embedding=packed, embedding_model=model)
        fact = self.get(namespace, key)
        assert fact is not None
        return fact

    def get(self, namespace: str, key: str) -> Fact | None:
        """The live fact ``key`` of ``namespace``, or None (also when it has expired)."""
        row = self.store.memory_fact(check_namespace(namespace), check_key(key), now_ms())
        return None if row is None else Fact.of(row)

    def require(self, namespace: str, key: str) -> Fact:
        """Like :meth:`get`, but raises :class:`~smithers.errors.UnknownMemoryKeyError` naming the key."""
        fact = self.get(namespace, key)
        if fact is None:
            raise UnknownMemoryKeyError(
                f"no fact {key!r} in memory namespace {namespace} (in {self.store.label})",
                hint=f"list the keys with: smithers memory list {namespace}", details={"namespace": namespace, "key": key},
            )
        return fact

    def delete(self, namespace: str, key: str) -> bool:
        """Delete fact ``key``; whether there was one."""
        namespace, key = check_namespace(namespace), check_key(key)
        with self.store.tx() as tx:
            live = self.store.memory_fact(namespace, key, tx.ts) is not None
            tx.memory_delete(namespace, key)
        return live

    def forget(self, namespace: str) -> int:
        """Delete every fact and every thread of ``namespace``; how many live facts there were."""
        namespace = check_namespace(namespace)
        with self.store.tx() as tx:
            live = len(self.store.memory_facts(namespace, tx.ts))
            tx.memory_delete(namespace)
        return live

    def list(self, namespace: str, *, prefix: str | None = None) -> Facts:
        """The live facts of ``namespace`` by key (``prefix``: only keys starting with it)."""
        return [Fact.of(r) for r in self.store.memory_facts(check_namespace(namespace), now_ms(), prefix=prefix)]

    def namespaces(self) -> Rows:
        """Every namespace with live facts or messages: ``{namespace, facts, messages}``."""
        return self.store.memory_namespaces(now_ms())

    def prune(self) -> int:
        """Delete every expired fact now (they are already invisible); how many."""
        with self.store.tx() as tx:
            return tx.memory_prune()

    def recall(self, namespace: str, query: str, k: int = 5) -> Facts:
        """The ``k`` live facts of ``namespace`` most relevant to ``query``, best first, each with
        its ``score`` (BM25, or cosine similarity with an embedding function; higher is better)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise UserError(f"k must be a positive whole number, got {k!r}")
        return recall(self.store, namespace, str(query), k, self.embed)

    # -- threads ------------------------------------------------------------------------------------

    def append(self, namespace: str, thread: str, role: str, content: str, *, meta: dict[str, Any] | None = None) -> Message:
        """Append a message to ``thread`` of ``namespace`` (created by its first message)."""
        namespace, thread, role = check_namespace(namespace), _name(thread, "thread name"), _name(role, "message role")
        if not isinstance(content, str):
            raise UserError(f"message content must be a string, got {type(content).__name__}")
        with self.store.tx() as tx:
            message_id = tx.memory_append_message(namespace, thread, role, content, None if meta is None else json.dumps(meta))
            created = tx.ts
        return Message(namespace, thread, message_id, role, content, created, meta)

    def messages(self, namespace: str, thread: str, *, limit: int | None = None) -> Messages:
        """The messages of ``thread``, oldest first (``limit``: the newest ``limit`` only)."""
        rows = self.store.memory_messages(check_namespace(namespace), _name(thread, "thread name"), limit=limit)
        return [Message.of(r) for r in rows]

    def threads(self, namespace: str) -> Rows:
        """The threads of ``namespace``: ``{thread, messages, last_at_ms}``, most recent first."""
        return self.store.memory_threads(check_namespace(namespace))

    def delete_thread(self, namespace: str, thread: str) -> int:
        """Delete a thread; how many messages it had."""
        namespace, thread = check_namespace(namespace), _name(thread, "thread name")
        with self.store.tx() as tx:
            return tx.memory_delete_thread(namespace, thread)


def open(db: str | Path | None = None, *, embed: Embedder | None = None) -> MemoryStore:
    """The memory of the database at ``db`` (default: ``$SMITHERS_DB``, else the nearest
    ``smithers.db`` walking up from the working directory, as the CLI finds it)."""
    store = Store.open(db_target(db))
    return MemoryStore(store, embed=embed, owns_store=True)


__all__ = ["Embedder", "Fact", "Memory", "MemoryStore", "Message", "Recall", "Remember", "check_namespace", "open"]
