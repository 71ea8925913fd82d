"""Chunk rows as the store keeps them (packed a part at a time in Chroma) and the journal
of what a process wrote, from which derived indexes are brought up to date."""

from __future__ import annotations

import base64
import json
import threading
import zlib
from typing import Any

Row = tuple[str, dict[str, Any], str]  # (chunk_id, metadata with its BM25 ``tokens``, original text)


def pack_rows(rows: list[Row]) -> str:
    """Up to 1,000 chunk rows (``store._ROWS_PART``) of one document as one zlib-compressed JSON value in base64.

    Chroma's local store pays per metadata key and per character of a string value, and
    puts a document into a trigram full-text index. With 24 keys and the text as a
    document, chunks went in at ≈ 540/s here; as one JSON string at ≈ 1,100/s; compressed
    at ≈ 1,700/s (30,000 chunks); with the rows packed a thousand at a time beside
    vectors that carry only ``doc_id`` and ``part``, 1,785/s against 1,446/s for a row per
    chunk (100,000 chunks). Search needs none of it from Chroma: filters and BM25 run
    over the lexical index, which is built from these rows."""
    raw = json.dumps([[cid, dict(meta, text=text)] for cid, meta, text in rows], ensure_ascii=False)
    return base64.b64encode(zlib.compress(raw.encode("utf-8"), 1)).decode("ascii")


def unpack_rows(blob: str) -> list[Row]:
    out = []
    for cid, row in json.loads(zlib.decompress(base64.b64decode(blob))):
        text = row.pop("text", "")
        out.append((cid, row, text))
    return out


def unpack_chunk(meta: dict[str, Any] | None, document: str | None) -> tuple[dict[str, Any], str]:
    """(metadata, original text) of a chunk written before rows were kept in parts: one
    compressed ``row`` per chunk, or every key its own with the text as the document."""
    if meta and "row" in meta:
        row = json.loads(zlib.decompress(base64.b64decode(meta["row"])))
        return row, row.pop("text", "")
    return dict(meta or {}), document or ""


class Journal:
    """What this process wrote to the chunks, by generation, so that derived indexes can be
    brought up to date by applying it instead of rebuilding from every chunk (at 1,000,000
    chunks a rebuild reads and decodes the whole store: minutes).

    Events are ``("rows", rows)`` (rows added or written over rows with the same ids),
    ``("drop_ids", ids)`` and ``("drop_doc", doc_id)``. A write's events are pending until
    its generation bump, then kept under that generation: a search in another thread sees
    whole writes only. The journal covers ``base`` to ``generation`` while every bump in
    between was ours; a write by another process restarts it. Thread-safe (chat sessions
    search while an upload writes)."""

    MAX_ROWS = 2_000_000  # past this the journal is dropped: a rebuild is then cheaper than the memory

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.base: int | None = None
        self.generation: int | None = None
        self._events: list[tuple[int, str, Any]] = []  # (generation, kind, payload), committed
        self._pending: list[tuple[str, Any]] = []
        self._rows = 0

    def _restart(self, generation: int | None) -> None:
        self.base = self.generation = generation
        self._events, self._pending, self._rows = [], [], 0

    def begin(self, generation: int) -> None:
        """Called under the write lock: restart unless we wrote the generation the store is at."""
        with self._lock:
            if self.generation != generation:
                self._restart(generation)
            self._pending = []

    def add(self, kind: str, payload: Any) -> None:
        with self._lock:
            if self.base is None:
                return
            if kind == "rows":
                self._rows += len(payload)
                if self._rows > self.MAX_ROWS:
                    self._restart(None)
                    return
            self._pending.append((kind, payload))

    def bumped(self, generation: int) -> None:
        """The write's events now belong to ``generation``, if we also wrote the one before it."""
        with self._lock:
            if self.base is not None and self.generation == generation - 1:
                self._events.extend((generation, kind, payload) for kind, payload in self._pending)
                self._pending = []
                self.generation = generation
            else:
                self._restart(None)

    def since(self, base: int, generation: int) -> list[tuple[str, Any]] | None:
        """The events that take the chunks from ``base`` to ``generation``, or None when the
        journal does not cover that span."""
        with self._lock:
            if self.base is None or self.base != base or self.generation is None or self.generation < generation:
                return None
            return [(kind, payload) for g, kind, payload in self._events if g <= generation]

    def covers(self) -> int | None:
        with self._lock:
            return self.base

    def indexed(self, generation: int) -> None:
        """A derived index of ``generation`` exists: events up to it are no longer needed."""
        with self._lock:
            if self.generation is None or self.base is None or self.generation < generation:
                if not self._pending:
                    self._restart(generation)
                return
            self.base = max(self.base, generation)
            self._events = [e for e in self._events if e[0] > generation]
            self._rows = sum(len(p) for _, kind, p in self._events if kind == "rows")
