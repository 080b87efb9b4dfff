"""The store's statements for agent memory (:mod:`smithers.memory`): facts, their full-text
index and message threads. Every SQL statement about memory lives here, once.

Two mixins, as in :mod:`smithers.storage.waits`: :class:`MemoryStoreMixin` gives
:class:`~smithers.storage.store.Store` its reads, :class:`MemoryTxMixin` gives
:class:`~smithers.storage.tx.Tx` its writes (inside the caller's open transaction, so a fact a
task remembers commits with the task's finish).

Portable SQL except for the full-text index, which is SQLite's FTS5 and is kept to the few
names marked ``FTS5`` below (the DDL, :func:`fts_match` and the two statements that use them):
a PostgreSQL backend swaps them for a ``tsvector`` column with a GIN index and ``ts_rank``.
The index is maintained by hand in the same transaction as the fact (no triggers), so the two
can never disagree.

Expired facts (``expires_at_ms`` in the past) are invisible to every read and are deleted by
:meth:`MemoryTxMixin.memory_prune`, which every memory write calls first.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from .dialect import POSTGRESQL, dialect_of, rows_of

FACTS = "_smithers_memory_facts"
FTS = "_smithers_memory_fts"  # FTS5
MESSAGES = "_smithers_memory_messages"

MEMORY_DDL: list[str] = [
    f"""CREATE TABLE {FACTS} (
        fact_id INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value_json TEXT NOT NULL,
        value_text TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER,
        source_run_id TEXT,
        source_node_id TEXT,
        embedding BLOB,
        embedding_model TEXT,
        UNIQUE (namespace, key)
    )""",
    # what every write's prune looks up (a namespace's expired facts) without scanning the namespace
    f"CREATE INDEX {FACTS}_expiry ON {FACTS} (namespace, expires_at_ms)",
    # FTS5: the searchable text of each fact (rowid = fact_id); BM25 ranks it
    f"CREATE VIRTUAL TABLE {FTS} USING fts5(key, value, tokenize = 'unicode61 remove_diacritics 2')",
    f"""CREATE TABLE {MESSAGES} (
        message_id INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        thread TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        meta_json TEXT,
        created_at_ms INTEGER NOT NULL
    )""",
    f"CREATE INDEX {MESSAGES}_thread ON {MESSAGES} (namespace, thread, message_id)",
]
"""Migration 3 (see :mod:`smithers.storage.schema`)."""

KEY_WEIGHT, VALUE_WEIGHT = 2.0, 1.0  # BM25 column weights: a word in the key counts double
_WORD = re.compile(r"\w+", re.UNICODE)
_LIVE = "(expires_at_ms IS NULL OR expires_at_ms > ?)"
_FACT_COLUMNS = (
    "fact_id, namespace, key, value_json, created_at_ms, updated_at_ms, expires_at_ms, source_run_id, source_node_id"
)


def fts_match(query: str) -> str | None:
    """FTS5: a free-text query as a MATCH expression: every word quoted (so ``AND``, ``-`` or
    ``"`` in the query are plain words, never syntax) and OR-ed, so BM25 ranks facts by how many
    of the words they hold and how rare those words are. None when the query has no word."""
    words = dict.fromkeys(w.lower() for w in _WORD.findall(query))
    return " OR ".join(f'"{w}"' for w in words) or None


_dicts = rows_of  # rows as dicts, the same keys on both backends


class MemoryStoreMixin:
    """Reads of facts and threads, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection

    def memory_fact(self, namespace: str, key: str, now_ms: int) -> dict[str, Any] | None:
        """One live fact (its row without the index columns), or None."""
        rows = _dicts(self._conn.execute(
            f"SELECT {_FACT_COLUMNS} FROM {FACTS} WHERE namespace = ? AND key = ? AND {_LIVE}", (namespace, key, now_ms)
        ))
        return rows[0] if rows else None

    def memory_facts(self, namespace: str, now_ms: int, *, prefix: str | None = None) -> list[dict[str, Any]]:
        """The live facts of a namespace, by key (``prefix``: only keys that start with it)."""
        where, params = "", list[Any]([namespace, now_ms])
        if prefix:
            where, params = " AND substr(key, 1, ?) = ?", [namespace, now_ms, len(prefix), prefix]
        return _dicts(self._conn.execute(
            f"SELECT {_FACT_COLUMNS} FROM {FACTS} WHERE namespace = ? AND {_LIVE}{where} ORDER BY key", params
        ))

    def memory_namespaces(self, now_ms: int) -> list[dict[str, Any]]:
        """Every namespace that holds a live fact or a message: ``{namespace, facts, messages}``."""
        return _dicts(self._conn.execute(
            f"SELECT namespace, SUM(facts) AS facts, SUM(messages) AS messages FROM ("
            f"SELECT namespace, COUNT(*) AS facts, 0 AS messages FROM {FACTS} WHERE {_LIVE} GROUP BY namespace "
            f"UNION ALL SELECT namespace, 0, COUNT(*) FROM {MESSAGES} GROUP BY namespace"
            f") AS counts GROUP BY namespace ORDER BY namespace",
            (now_ms,),
        ))

    def memory_search(self, namespace: str, query: str, k: int, now_ms: int) -> list[dict[str, Any]]:
        """FTS5: the ``k`` live facts of a namespace that best match ``query`` by BM25, best first,
        each with ``score`` (higher is better). No words in the query, no match."""
        match = fts_match(query)
        if match is None or k <= 0:
            return []
        if dialect_of(self._conn) == POSTGRESQL:
            return self._memory_search_tsvector(namespace, query, k, now_ms)
        # bm25() is lower-is-better (negative); the score flips it so callers sort one way for both rankers
        return _dicts(self._conn.execute(
            f"SELECT {', '.join('f.' + c.strip() for c in _FACT_COLUMNS.split(','))}, "
            f"-bm25({FTS}, {KEY_WEIGHT}, {VALUE_WEIGHT}) AS score "
            f"FROM {FTS} JOIN {FACTS} f ON f.fact_id = {FTS}.rowid "
            f"WHERE {FTS} MATCH ? AND f.namespace = ? AND (f.expires_at_ms IS NULL OR f.expires_at_ms > ?) "
            f"ORDER BY bm25({FTS}, {KEY_WEIGHT}, {VALUE_WEIGHT}), f.key LIMIT ?",
            (match, namespace, now_ms, int(k)),
        ))

    def _memory_search_tsvector(self, namespace: str, query: str, k: int, now_ms: int) -> list[dict[str, Any]]:
        """PostgreSQL: the FTS5 table is a ``tsvector`` column (key weighted A, value B, see
        :func:`smithers.storage.postgres.translate_ddl`) ranked by ``ts_rank`` with the same column
        weights as BM25 here; ``ts_rank`` counts how often the words occur, not how rare they are."""
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
        tsquery = " | ".join("'" + w.replace("'", "''") + "'" for w in words)
        weights = f"{{0, 0, {VALUE_WEIGHT / KEY_WEIGHT}, 1}}"  # D, C, B (value), A (key)
        return _dicts(self._conn.execute(
            f"SELECT {', '.join('f.' + c.strip() for c in _FACT_COLUMNS.split(','))}, "
            f"ts_rank(?::float4[], s.tsv, q) * {KEY_WEIGHT} AS score "
            f"FROM {FTS} s JOIN {FACTS} f ON f.fact_id = s.rowid, to_tsquery('simple', ?) q "
            f"WHERE s.tsv @@ q AND f.namespace = ? AND (f.expires_at_ms IS NULL OR f.expires_at_ms > ?) "
            f"ORDER BY score DESC, f.key LIMIT ?",
            (weights, tsquery, namespace, now_ms, int(k)),
        ))

    def memory_vectors(self, namespace: str, now_ms: int) -> list[dict[str, Any]]:
        """Every live fact of a namespace with its text and stored embedding (for ranking by cosine)."""
        return _dicts(self._conn.execute(
            f"SELECT {_FACT_COLUMNS}, value_text, embedding, embedding_model FROM {FACTS} "
            f"WHERE namespace = ? AND {_LIVE} ORDER BY key",
            (namespace, now_ms),
        ))

    def memory_messages(self, namespace: str, thread: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """A thread's messages, oldest first (``limit``: only the newest ``limit``)."""
        if limit is None:
            return _dicts(self._conn.execute(
                f"SELECT * FROM {MESSAGES} WHERE namespace = ? AND thread = ? ORDER BY message_id", (namespace, thread)
            ))
        newest = _dicts(self._conn.execute(
            f"SELECT * FROM {MESSAGES} WHERE namespace = ? AND thread = ? ORDER BY message_id DESC LIMIT ?",
            (namespace, thread, int(limit)),
        ))
        return newest[::-1]

    def memory_threads(self, namespace: str) -> list[dict[str, Any]]:
        """The threads of a namespace: ``{thread, messages, last_at_ms}``, most recent first."""
        return _dicts(self._conn.execute(
            f"SELECT thread, COUNT(*) AS messages, MAX(created_at_ms) AS last_at_ms FROM {MESSAGES} "
            "WHERE namespace = ? GROUP BY thread ORDER BY last_at_ms DESC, thread",
            (namespace,),
        ))


class MemoryTxMixin:
    """Writes of facts and threads, inside an open :class:`~smithers.storage.tx.Tx`."""

    __slots__ = ()
    _conn: sqlite3.Connection
    ts: int

    def memory_prune(self, namespace: str | None = None) -> int:
        """Delete expired facts (of one namespace, or all) and their index rows. Returns how many."""
        where, params = "expires_at_ms IS NOT NULL AND expires_at_ms <= ?", list[Any]([self.ts])
        if namespace is not None:
            where = where + " AND namespace = ?"
            params.append(namespace)
        ids = [r[0] for r in self._conn.execute(f"SELECT fact_id FROM {FACTS} WHERE {where}", params)]
        self._delete_facts(ids)
        return len(ids)

    def _delete_facts(self, ids: list[int]) -> None:
        for fact_id in ids:
            self._conn.execute(f"DELETE FROM {FTS} WHERE rowid = ?", (fact_id,))  # FTS5
            self._conn.execute(f"DELETE FROM {FACTS} WHERE fact_id = ?", (fact_id,))

    def memory_set(
        self, namespace: str, key: str, *, value_json: str, value_text: str, expires_at_ms: int | None,
        source_run_id: str | None = None, source_node_id: str | None = None,
        embedding: bytes | None = None, embedding_model: str | None = None,
    ) -> int:
        """Insert or replace the fact ``(namespace, key)`` and its index row; returns its id. A
        replaced fact keeps its ``created_at_ms``; a new value drops a stale embedding."""
        self.memory_prune(namespace)
        row = self._conn.execute(f"SELECT fact_id, created_at_ms FROM {FACTS} WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        if row is None:
            inserted = self._conn.execute(
                f"INSERT INTO {FACTS} (namespace, key, value_json, value_text, created_at_ms, updated_at_ms, expires_at_ms, "
                "source_run_id, source_node_id, embedding, embedding_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING fact_id",
                (namespace, key, value_json, value_text, self.ts, self.ts, expires_at_ms, source_run_id, source_node_id,
                 embedding, embedding_model),
            ).fetchone()
            fact_id = int(inserted[0])
        else:
            fact_id = int(row[0])
            self._conn.execute(
                f"UPDATE {FACTS} SET value_json = ?, value_text = ?, updated_at_ms = ?, expires_at_ms = ?, source_run_id = ?, "
                "source_node_id = ?, embedding = ?, embedding_model = ? WHERE fact_id = ?",
                (value_json, value_text, self.ts, expires_at_ms, source_run_id, source_node_id, embedding, embedding_model,
                 fact_id),
            )
            self._conn.execute(f"DELETE FROM {FTS} WHERE rowid = ?", (fact_id,))  # FTS5
        self._conn.execute(f"INSERT INTO {FTS} (rowid, key, value) VALUES (?, ?, ?)", (fact_id, key, value_text))  # FTS5
        return fact_id

    def memory_set_embeddings(self, vectors: list[tuple[int, int, bytes, str]]) -> None:
        """Store ``(fact_id, updated_at_ms, embedding, embedding_model)`` computed for facts
        that had none; a fact changed since it was read (another ``updated_at_ms``) keeps its own."""
        self._conn.executemany(
            f"UPDATE {FACTS} SET embedding = ?, embedding_model = ? WHERE fact_id = ? AND updated_at_ms = ?",
            [(vector, model, fact_id, updated) for fact_id, updated, vector, model in vectors],
        )

    def memory_delete(self, namespace: str, key: str | None = None) -> int:
        """Delete one fact, or (``key`` None) every fact and message of the namespace. Returns how
        many facts (live or expired) were deleted."""
        self.memory_prune(namespace)
        if key is None:
            ids = [r[0] for r in self._conn.execute(f"SELECT fact_id FROM {FACTS} WHERE namespace = ?", (namespace,))]
            self._conn.execute(f"DELETE FROM {MESSAGES} WHERE namespace = ?", (namespace,))
        else:
            ids = [r[0] for r in self._conn.execute(f"SELECT fact_id FROM {FACTS} WHERE namespace = ? AND key = ?", (namespace, key))]
        self._delete_facts(ids)
        return len(ids)

    def memory_append_message(self, namespace: str, thread: str, role: str, content: str, meta_json: str | None = None) -> int:
        """Append a message to a thread; returns its id (ids grow, so they order the thread)."""
        row = self._conn.execute(
            f"INSERT INTO {MESSAGES} (namespace, thread, role, content, meta_json, created_at_ms) VALUES (?, ?, ?, ?, ?, ?) "
            "RETURNING message_id",
            (namespace, thread, role, content, meta_json, self.ts),
        ).fetchone()
        return int(row[0])

    def memory_delete_thread(self, namespace: str, thread: str) -> int:
        """Delete a thread's messages; returns how many."""
        cur = self._conn.execute(f"DELETE FROM {MESSAGES} WHERE namespace = ? AND thread = ?", (namespace, thread))
        return cur.rowcount
