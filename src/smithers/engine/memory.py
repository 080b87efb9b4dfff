"""Agent memory in the engine: ranking facts for a recall, and a task's Recall/Remember.

Ranking (:class:`Ranking`) is shared by :mod:`smithers.memory` (the public API) and the run
loop. Without an embedding function it is one FTS5 BM25 query. With one, every live fact of the
namespace is ranked by cosine similarity to the query's vector, brute force: facts that share no
word with the query are found too, which is why one plugs in embeddings (re-ranking BM25's
candidates would not find them). A fact's vector is computed once, when it is set through a
memory with that function or at its first recall, and stored with the function's name; a fact
embedded by another function is embedded again, never compared across models.

:class:`TaskMemory` is what the run loop holds for a task with ``memory=``: it resolves the
namespace, query and key (strings or functions of ``ctx``), recalls before the agent's first
turn (the ``<memory>`` section of the prompt, and a ``MemoryRecalled`` event), and writes the
remembered fact with a ``MemoryRemembered`` event inside the transaction that finishes the task
(:meth:`TaskMemory.write`), so a fact is remembered exactly when the output is persisted.
"""

from __future__ import annotations

import heapq
import inspect
import json
import math
import operator
import sys
from array import array
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..authoring.memory import Embedder, Memory, check_key, check_namespace, embedder_name
from ..authoring.policies import parse_duration
from ..errors import RunError, SmithersError, UserError
from ..states import EventType
from ..storage.store import Store, now_ms

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..authoring.context import Ctx
    from ..storage.tx import Tx
    from .tree import TaskDescriptor

MAX_FACT_CHARS_IN_PROMPT = 2000


@dataclass(frozen=True, slots=True)
class Fact:
    """One remembered fact. ``score`` is set by a recall (higher is more relevant: BM25 or cosine)."""

    namespace: str
    key: str
    value: Any
    created_at_ms: int
    updated_at_ms: int
    expires_at_ms: int | None = None
    source_run_id: str | None = None
    source_node_id: str | None = None
    score: float | None = None

    @classmethod
    def of(cls, row: dict[str, Any], score: float | None = None) -> Fact:
        return cls(
            namespace=row["namespace"], key=row["key"], value=json.loads(row["value_json"]), created_at_ms=row["created_at_ms"],
            updated_at_ms=row["updated_at_ms"], expires_at_ms=row["expires_at_ms"], source_run_id=row["source_run_id"],
            source_node_id=row["source_node_id"], score=row.get("score") if score is None else score,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fact as JSON-ready data (what ``smithers memory ... --json`` prints)."""
        return asdict(self)


def value_text(value: Any) -> str:
    """The searchable text of a value: a string itself; else the strings and numbers inside it."""
    if isinstance(value, str):
        return value
    parts: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif item is not None:
            parts.append(str(item))
    return " ".join(parts)


def encode_value(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise UserError(f"a memory value must be JSON (str, number, bool, list, dict, None): {err}") from None


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors of the same length (0.0 when either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"vectors of {len(a)} and {len(b)} dimensions")
    norm = math.sqrt(sum(map(operator.mul, a, a))) * math.sqrt(sum(map(operator.mul, b, b)))
    return sum(map(operator.mul, a, b)) / norm if norm else 0.0


def pack_vector(vector: Sequence[float]) -> bytes:
    """How a fact's vector is stored: scaled to length 1 (so cosine is a dot product), as
    little-endian float32 (4 bytes a dimension; decoding it is a copy, not a parse)."""
    norm = math.sqrt(sum(map(operator.mul, vector, vector)))
    packed = array("f", [x / norm for x in vector] if norm else vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_vector(blob: bytes) -> array[float]:
    vector = array("f", blob)
    if sys.byteorder == "big":
        vector.byteswap()
    return vector


def vector_of(raw: Any, what: str) -> list[float]:
    """What an embedding function returned, as a list of floats (a UserError naming ``what`` if it is not one)."""
    try:
        vector = [float(x) for x in raw]
    except (TypeError, ValueError):
        raise UserError(f"the embedding function returned {type(raw).__name__} for {what}; it must return a sequence of numbers") from None
    if not vector:
        raise UserError(f"the embedding function returned an empty vector for {what}")
    return vector


class Ranking:
    """One recall: ``texts()`` to embed (none without an embedding function), then ``finish``
    with their vectors. Split so that the run loop can compute embeddings in a thread while
    every SQL statement stays on the loop's thread; :func:`recall` does it all at once."""

    def __init__(self, store: Store, namespace: str, query: str, k: int, embed: Embedder | None = None) -> None:
        self.store, self.namespace, self.query, self.k, self.embed = store, check_namespace(namespace), query, int(k), embed
        if self.k < 1:
            raise UserError(f"k must be at least 1, got {k!r}")
        self.now = now_ms()
        self._rows: list[dict[str, Any]] = []
        self._missing: list[dict[str, Any]] = []
        if embed is not None:
            self.model = embedder_name(embed)
            self._rows = store.memory_vectors(self.namespace, self.now)
            self._missing = [r for r in self._rows if r["embedding_model"] != self.model or not r["embedding"]]

    def texts(self) -> list[str]:
        """What to embed: the facts without a vector from this function, then the query."""
        if self.embed is None:
            return []
        return [f"{r['key']}: {r['value_text']}" for r in self._missing] + [self.query]

    def finish(self, vectors: Sequence[Sequence[float]] = ()) -> list[Fact]:
        """The ``k`` best facts, best first."""
        if self.embed is None:
            return [Fact.of(r) for r in self.store.memory_search(self.namespace, self.query, self.k, self.now)]
        fresh = [pack_vector(vector_of(v, f"fact {r['key']!r}")) for v, r in zip(vectors, self._missing, strict=False)]
        query = unpack_vector(pack_vector(vector_of(vectors[-1], "the query")))
        if fresh:
            with self.store.tx() as tx:
                tx.memory_set_embeddings(
                    [(r["fact_id"], r["updated_at_ms"], blob, self.model) for r, blob in zip(self._missing, fresh, strict=True)]
                )
        known = {r["fact_id"]: blob for r, blob in zip(self._missing, fresh, strict=True)}
        scored: list[tuple[float, str, dict[str, Any]]] = []
        for row in self._rows:
            vector = unpack_vector(known.get(row["fact_id"]) or row["embedding"])
            if len(vector) != len(query):
                raise UserError(
                    f"fact {row['key']!r} in {self.namespace} has a {len(vector)}-dimension vector, the query {len(query)}",
                    hint="an embedding function must return vectors of one length; give a new function a new `name`",
                )
            scored.append((sum(map(operator.mul, vector, query)), row["key"], row))  # unit vectors: the dot is the cosine
        best = heapq.nsmallest(self.k, scored, key=lambda item: (-item[0], item[1]))
        return [Fact.of(row, score=score) for score, _, row in best]


def recall(store: Store, namespace: str, query: str, k: int = 5, embed: Embedder | None = None) -> list[Fact]:
    """The ``k`` live facts of ``namespace`` most relevant to ``query``, best first."""
    ranking = Ranking(store, namespace, query, k, embed)
    return ranking.finish([list(embed(text)) for text in ranking.texts()] if embed is not None else ())


# -- a task's memory ------------------------------------------------------------------------------


def _resolve(value: Any, ctx: Ctx, output: BaseModel | None, what: str) -> str:
    if not callable(value):
        return str(value)
    try:
        wants_output = output is not None and len([
            p for p in inspect.signature(value).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]) >= 2
    except (TypeError, ValueError):
        wants_output = False
    result = value(ctx, output) if wants_output else value(ctx)
    if not isinstance(result, str) or not result:
        raise RunError(f"{what} function returned {result!r:.60}; it must return a non-empty string", retryable=False)
    return result


class TaskMemory:
    """The Recall/Remember of one attempt of a task with ``memory=`` (see the module docstring)."""

    def __init__(self, store: Store, desc: TaskDescriptor, ctx: Ctx) -> None:
        assert desc.task.memory is not None
        self.store, self.desc, self.ctx = store, desc, ctx
        self.memory: Memory = desc.task.memory
        self.target: tuple[str, str, str, str, int | None, bytes | None, str | None] | None = None

    def _where(self, what: str) -> str:
        return f"task {self.desc.node_id!r}: {what}"

    async def recall_section(self, emit: Callable[[str, dict[str, Any]], None]) -> str:
        """The ``<memory>`` section for the agent's prompt ('' without Recall or when nothing matches)."""
        spec = self.memory.recall
        if spec is None:
            return ""
        try:
            namespace = check_namespace(_resolve(spec.namespace, self.ctx, None, self._where("Recall namespace")))
            query = _resolve(spec.query, self.ctx, None, self._where("Recall query"))
            ranking = Ranking(self.store, namespace, query, spec.k, self.memory.embed)
            texts = ranking.texts()
            embed = self.memory.embed
            import asyncio  # (imported here: the `smithers memory` commands load this module too)

            vectors = await asyncio.to_thread(lambda: [list(embed(t)) for t in texts]) if embed is not None else []
            facts = ranking.finish(vectors)
        except SmithersError as err:
            if isinstance(err, RunError):
                raise
            raise RunError(self._where(err.message), retryable=False, hint=err.hint) from None
        emit(EventType.MEMORY_RECALLED, {"namespace": namespace, "query": query, "keys": [f.key for f in facts],
                                         "ranker": "cosine" if self.memory.embed is not None else "bm25"})
        if not facts:
            return ""
        lines = []
        for fact in facts:
            text = fact.value if isinstance(fact.value, str) else json.dumps(fact.value, ensure_ascii=False)
            if len(text) > MAX_FACT_CHARS_IN_PROMPT:
                text = text[: MAX_FACT_CHARS_IN_PROMPT - 1] + "…"
            lines.append(f"- {fact.key}: {text}")
        return (
            f'\n\n<memory namespace="{namespace}">\n'
            "Facts remembered from earlier work, most relevant first (they may be out of date):\n"
            + "\n".join(lines) + "\n</memory>"
        )

    async def remembering(self, attempt: Coroutine[Any, Any, Any]) -> Any:
        """Run the attempt, then resolve where its output is remembered (and its vector): a key
        function that fails fails the attempt, before anything is written."""
        output = await attempt
        spec = self.memory.remember
        if spec is None or not hasattr(output, "model_dump"):
            return output
        try:
            namespace = check_namespace(_resolve(spec.namespace, self.ctx, output, self._where("Remember namespace")))
            key = check_key(_resolve(spec.key, self.ctx, output, self._where("Remember key")))
            ttl = parse_duration(spec.ttl, field="Remember ttl")
        except SmithersError as err:
            if isinstance(err, RunError):
                raise
            raise RunError(self._where(err.message), retryable=False, hint=err.hint) from None
        value = output.model_dump(mode="json")
        text = value_text(value)
        packed = model = None
        if self.memory.embed is not None:
            import asyncio

            embed = self.memory.embed
            packed = pack_vector(vector_of(await asyncio.to_thread(lambda: list(embed(f"{key}: {text}"))), f"fact {key!r}"))
            model = embedder_name(embed)
        expires = None if ttl is None else now_ms() + int(ttl * 1000)
        self.target = (namespace, key, encode_value(value), text, expires, packed, model)
        return output

    def write(self, tx: Tx) -> None:
        """Inside the transaction that finishes the task: write the fact and its event."""
        if self.target is None:
            return
        namespace, key, value_json, text, expires, packed, model = self.target
        tx.memory_set(
            namespace, key, value_json=value_json, value_text=text, expires_at_ms=expires, source_run_id=tx.run_id,
            source_node_id=self.desc.node_id, embedding=packed, embedding_model=model,
        )
        tx.event(EventType.MEMORY_REMEMBERED, node_id=self.desc.node_id, iteration=self.desc.iteration, namespace=namespace, key=key)


__all__ = ["Fact", "Ranking", "TaskMemory", "cosine", "encode_value", "pack_vector", "recall", "unpack_vector", "value_text"]
