"""BM25 over the store's chunks (jieba words of the clean, Simplified text).

Chroma's local full-text search is a trigram index, so a two-character word such as 滞后
never matches. The index is derived data, rebuilt from the chunks whenever the store's
generation changes and kept beside the store (``bm25.npz``) so the next process only loads it."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from llmstruct.atomic import atomic_file
from llmstruct.search.filters import Clause
from llmstruct.store.store import Store
from llmstruct.text import bm25

RRF_K = 60




SIDECAR = "bm25.npz"

_SIDECAR_VERSION = 1


# Chunk metadata that neither hits nor filters use: left out of the in-memory table.
_TABLE_DROP = ("units_lead", "units_responsible", "units_cooperating", "units_reporting", "index_version")


class LexicalIndex:
    """BM25 over the store's chunks plus the chunk table hits are built from.

    Postings are kept per term in CSR form (``indptr``, ``rows``, ``weights``) with the
    BM25 weight of each (term, chunk) precomputed, so a query costs one vectorised add
    per query term.
    """

    def __init__(self, tag: str, ids: list[str], table: list[dict[str, Any]], vocab: dict[str, int],
                 indptr: np.ndarray, rows: np.ndarray, weights: np.ndarray):
        self.tag = tag
        self.ids = ids
        self.table = table
        self.vocab = vocab
        self.indptr = indptr
        self.rows = rows
        self.weights = weights
        self.pos = {cid: i for i, cid in enumerate(ids)}
        self._postings: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, tag: str, chunks: Iterable[tuple[str, dict[str, Any], str]]) -> "LexicalIndex":
        ids: list[str] = []
        table: list[dict[str, Any]] = []
        vocab: dict[str, int] = {}
        term_ids: list[np.ndarray] = []
        tfs: list[np.ndarray] = []
        lengths: list[int] = []
        for cid, meta, text in chunks:
            tokens = meta.pop("tokens", "").split()
            for key in _TABLE_DROP:
                meta.pop(key, None)
            counts = Counter(tokens)
            ids.append(cid)
            meta["text"] = text
            table.append(meta)
            lengths.append(len(tokens))
            term_ids.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in counts), np.int32, len(counts)))
            tfs.append(np.fromiter(counts.values(), np.float32, len(counts)))
        n = len(ids)
        doc_len = np.asarray(lengths, np.float32)
        if n == 0 or not vocab:
            return cls(tag, ids, table, vocab, np.zeros(len(vocab) + 1, np.int64), np.zeros(0, np.int32),
                       np.zeros(0, np.float32))
        row_of = np.repeat(np.arange(n, dtype=np.int32), [len(t) for t in term_ids])
        term = np.concatenate(term_ids)
        tf = np.concatenate(tfs)
        order = np.argsort(term, kind="stable")
        term, row_of, tf = term[order], row_of[order], tf[order]
        df = np.bincount(term, minlength=len(vocab)).astype(np.float64)
        term_idf = bm25.idf(df, n).astype(np.float32)
        avg = float(doc_len.mean()) or 1.0
        weights = bm25.weight(term_idf[term], tf, doc_len[row_of], avg).astype(np.float32)
        indptr = np.zeros(len(vocab) + 1, np.int64)
        indptr[1:] = np.cumsum(df.astype(np.int64))
        return cls(tag, ids, table, vocab, indptr, row_of, weights)

    def scores(self, tokens: list[str]) -> np.ndarray:
        out = np.zeros(len(self.ids), np.float32)
        for tok, qtf in Counter(tokens).items():
            t = self.vocab.get(tok)
            if t is None:
                continue
            a, b = self.indptr[t], self.indptr[t + 1]
            out[self.rows[a:b]] += self.weights[a:b] * (1.0 + 0.2 * (qtf - 1))
        return out

    def top(self, tokens: list[str], n: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, score) of the ``n`` best chunks with a positive score, best first."""
        if not self.ids or not tokens:
            return []
        s = self.scores(tokens)
        if mask is not None:
            s = np.where(mask, s, 0.0)
        cand = np.flatnonzero(s > 0)
        if len(cand) > n:
            cand = cand[np.argpartition(-s[cand], n - 1)[:n]]
        cand = cand[np.lexsort((cand, -s[cand]))]
        return [(int(i), float(s[i])) for i in cand]

    def _values(self, field: str) -> dict[str, np.ndarray]:
        with self._lock:
            if field not in self._postings:
                acc: dict[str, list[int]] = {}
                for i, meta in enumerate(self.table):
                    val = meta.get(field)
                    for v in val if isinstance(val, list) else ([val] if val is not None else []):
                        acc.setdefault(str(v), []).append(i)
                self._postings[field] = {v: np.asarray(ix, np.int64) for v, ix in acc.items()}
            return self._postings[field]

    def known(self, field: str) -> list[str]:
        return sorted(self._values(field))

    def mask(self, clauses: list[Clause]) -> np.ndarray | None:
        """Rows that pass every clause, or None when there are no clauses."""
        if not clauses:
            return None
        result = np.ones(len(self.ids), bool)
        for clause in clauses:
            hit = np.zeros(len(self.ids), bool)
            for f, v in clause.pairs:
                ix = self._values(f).get(v)
                if ix is not None:
                    hit[ix] = True
            result &= hit
        return result

    # ---- persistence

    def save(self, path: Path) -> None:
        """One file written to a temp name and renamed: readers never see half an index."""
        header = json.dumps({"version": _SIDECAR_VERSION, "tag": self.tag, "ids": self.ids, "table": self.table,
                             "vocab": sorted(self.vocab, key=self.vocab.__getitem__)}, ensure_ascii=False)
        with atomic_file(path, "wb") as f:
            np.savez(f, header=np.frombuffer(header.encode("utf-8"), np.uint8), indptr=self.indptr,
                     rows=self.rows, weights=self.weights)

    @classmethod
    def load(cls, path: Path, tag: str) -> "LexicalIndex | None":
        """The saved index if it was built for ``tag`` (collection and generation), else None."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(data["header"].tobytes().decode("utf-8"))
                if header.get("version") != _SIDECAR_VERSION or header.get("tag") != tag:
                    return None
                vocab = {t: i for i, t in enumerate(header["vocab"])}
                return cls(tag, header["ids"], header["table"], vocab, data["indptr"], data["rows"], data["weights"])
        except (OSError, ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError):
            return None


def lexical_index(store: Store) -> LexicalIndex:
    """The BM25 index for the store's current generation: in memory, on disk, or rebuilt."""
    tag = store.chunks_version()
    cached = store.derived.get("lexical")
    if cached is not None and cached.tag == tag:
        return cached
    path = store.local_dir / SIDECAR
    index = LexicalIndex.load(path, tag)
    if index is None:
        index = LexicalIndex.build(tag, store.chunk_rows())
        try:
            index.save(path)
        except OSError:
            pass  # a read-only store folder still searches, it just rebuilds per process
    store.derived["lexical"] = index
    return index
