"""BM25 over the store's chunks (jieba words of the clean, Simplified text).

Chroma's local full-text search is a trigram index, so a two-character word such as 滞后
never matches. The index is derived data, rebuilt from the chunks whenever the store's
generation changes and kept beside the store (``bm25.npz``) so the next process only loads it."""

from __future__ import annotations

import json
import threading
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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

_SIDECAR_VERSION = 3

SPLIT_POSTINGS = 500_000

_SCORE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmstruct-bm25")


# Chunk metadata that neither hits nor filters use: left out of the index.
_TABLE_DROP = ("units_lead", "units_responsible", "units_cooperating", "units_reporting", "index_version")


class _Column:
    """One metadata field of every chunk: its distinct values, and per row the codes of
    the row's values in CSR form (a scalar field has at most one per row)."""

    def __init__(self, values: list[Any], is_list: bool, indptr: np.ndarray, codes: np.ndarray):
        self.values = values
        self.is_list = is_list
        self.indptr = indptr
        self.codes = codes

    def get(self, row: int) -> Any:
        a, b = int(self.indptr[row]), int(self.indptr[row + 1])
        if self.is_list:
            return [self.values[c] for c in self.codes[a:b]] if b > a else None
        return self.values[self.codes[a]] if b > a else None


def _column(n: int, rows: list[int], vals: list[Any]) -> _Column:
    """Encode one field's values (given for ``rows`` of ``n``) as a column."""
    is_list = any(isinstance(v, list) for v in vals)
    flat = [x for v in vals for x in (v if isinstance(v, list) else (v,))] if is_list else vals
    counts = np.zeros(n, np.int64)
    counts[np.asarray(rows, np.int64)] = [len(v) if isinstance(v, list) else 1 for v in vals] if is_list else 1
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    if len(set(map(type, flat))) <= 1:  # one type: the values themselves are the keys (1 and True would collide)
        index: dict[Any, int] = dict.fromkeys(flat)
        values = list(index)
        index.update(zip(values, range(len(values))))
        codes = np.fromiter(map(index.__getitem__, flat), np.int32, len(flat))
    else:
        typed = {}
        codes = np.fromiter((typed.setdefault((type(v).__name__, v), len(typed)) for v in flat), np.int32, len(flat))
        values = [v for _, v in typed]
    return _Column(values, is_list, indptr, codes)


def _weights(term: np.ndarray, tf: np.ndarray, row: np.ndarray, df: np.ndarray, doc_len: np.ndarray) -> np.ndarray:
    """The BM25 weight of each posting (``term``, ``row``, ``tf``) over ``len(doc_len)`` chunks."""
    term_idf = bm25.idf(df.astype(np.float64), len(doc_len)).astype(np.float32)
    avg = float(doc_len.mean()) if len(doc_len) else 1.0
    return bm25.weight(term_idf[term], tf.astype(np.float32), doc_len[row], avg or 1.0).astype(np.float32)


def _concat_columns(parts: list["LexicalIndex"], keep: list[np.ndarray], n: int) -> dict[str, _Column]:
    """The parts' metadata columns over their kept rows, one after another."""
    out: dict[str, _Column] = {}
    for name in dict.fromkeys(k for part in parts for k in part.columns):
        index: dict[tuple[str, Any], int] = {}
        counts, codes = [], []
        for part, kept in zip(parts, keep, strict=True):
            col = part.columns.get(name)
            if col is None:
                counts.append(np.zeros(int(kept.sum()), np.int64))
                continue
            remap = np.fromiter((index.setdefault((type(v).__name__, v), len(index)) for v in col.values), np.int32,
                                len(col.values))
            per_row = np.diff(np.asarray(col.indptr))
            counts.append(per_row[kept])
            codes.append(remap[np.asarray(col.codes)[np.repeat(kept, per_row)]])
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.concatenate(counts), out=indptr[1:])
        is_list = any(p.columns[name].is_list for p in parts if name in p.columns)
        out[name] = _Column([v for _, v in index], is_list, indptr,
                            np.concatenate(codes) if codes else np.zeros(0, np.int32))
    return out


def _concat_text(parts: list["LexicalIndex"], keep: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Text blob and offsets of the parts' kept rows: whole runs of kept rows are copied at once."""
    pieces, lengths = [], []
    for part, kept in zip(parts, keep, strict=True):
        offsets = np.asarray(part.text_offsets)
        lengths.append(np.diff(offsets)[kept])
        edges = np.flatnonzero(np.diff(np.concatenate(([0], kept.astype(np.int8), [0]))))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            pieces.append(np.asarray(part.text_blob[offsets[a] : offsets[b]]))
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.zeros(len(all_lengths) + 1, np.int64)
    np.cumsum(all_lengths, out=offsets[1:])
    return (np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)), offsets


def _concat(tag: str, parts: list["LexicalIndex"], keep: list[np.ndarray]) -> "LexicalIndex":
    """One index of the parts' kept rows, in order, with one vocabulary and new weights.

    Postings stay grouped by term and, within a term, ordered by row: each kept posting is
    sent straight to its place (term start + postings of that term in earlier parts + its
    rank in its own part), one pass with no sort."""
    vocab: dict[str, int] = {}
    maps = []
    for part in parts:
        new = [t for t in part.vocab if t not in vocab]
        vocab.update(zip(new, range(len(vocab), len(vocab) + len(new))))
        local = sorted(part.vocab, key=part.vocab.__getitem__)
        maps.append(np.fromiter(map(vocab.__getitem__, local), np.int32, len(local)))
    kept_rows = [int(k.sum()) for k in keep]
    n = sum(kept_rows)
    staged = []  # per part: global term, new row and tf of each kept posting, its local counts
    total = np.zeros(len(vocab), np.int64)
    start = 0
    for part, kept, gmap, count in zip(parts, keep, maps, kept_rows, strict=True):
        indptr = np.asarray(part.indptr)
        local_df = np.diff(indptr)
        rows, tf = np.asarray(part.rows), np.asarray(part.tf)
        local_term = np.repeat(np.arange(len(local_df), dtype=np.int32), local_df)
        if not kept.all():
            alive = kept[rows]
            local_term, rows, tf = local_term[alive], rows[alive], tf[alive]
            local_df = np.bincount(local_term, minlength=len(gmap))
        renumber = (np.cumsum(kept, dtype=np.int64) - 1 + start).astype(np.int32)
        staged.append((gmap[local_term], renumber[rows], tf, local_df))
        total[gmap] += local_df
        start += count
    indptr = np.zeros(len(vocab) + 1, np.int64)
    np.cumsum(total, out=indptr[1:])
    out_rows = np.empty(int(indptr[-1]), np.int32)
    out_tf = np.empty(int(indptr[-1]), np.uint16)
    before = indptr[:-1].copy()  # where the next part's postings of each term go
    for (gterm, rows, tf, local_df), gmap in zip(staged, maps, strict=True):
        first = np.cumsum(local_df) - local_df
        rank = np.arange(len(gterm), dtype=np.int64) - np.repeat(first, local_df)
        dest = before[gterm] + rank
        out_rows[dest] = rows
        out_tf[dest] = tf
        before[gmap] += local_df
    doc_len = np.concatenate([np.asarray(p.doc_len)[k] for p, k in zip(parts, keep, strict=True)]).astype(np.float32)
    term = np.repeat(np.arange(len(vocab), dtype=np.int32), total)
    weights = _weights(term, out_tf, out_rows, total, doc_len) if n else np.zeros(0, np.float32)
    ids = [cid for part, kept in zip(parts, keep, strict=True)
           for cid in (part.ids if kept.all() else [part.ids[i] for i in np.flatnonzero(kept)])]
    blob, offsets = _concat_text(parts, keep)
    return LexicalIndex(tag, ids, _concat_columns(parts, keep, n), blob, offsets, vocab, indptr, out_rows, weights,
                        out_tf, doc_len)


class LexicalIndex:
    """BM25 over the store's chunks, with their metadata and text held column by column.

    Postings are kept per term in CSR form (``indptr``, ``rows``, ``weights``) with the
    BM25 weight of each (term, chunk) precomputed, so a query costs one vectorised add
    per query term. Metadata and text are numpy columns rather than a dict per chunk: at
    1,000,000 chunks the dicts took gigabytes and tens of seconds to load; columns load
    as a few large arrays, and a hit's row is put together only when it is shown.
    """

    def __init__(self, tag: str, ids: list[str], columns: dict[str, _Column], text_blob: np.ndarray,
                 text_offsets: np.ndarray, vocab: dict[str, int], indptr: np.ndarray, rows: np.ndarray,
                 weights: np.ndarray, tf: np.ndarray, doc_len: np.ndarray):
        self.tag = tag
        self.tf = tf  # per posting: what the weights are recomputed from when rows are added or dropped
        self.doc_len = doc_len
        self.ids = ids
        self.columns = columns
        self.text_blob = text_blob
        self.text_offsets = text_offsets
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
        texts: list[bytes] = []
        vocab: dict[str, int] = {}
        lengths: list[int] = []
        pending: list[str] = []  # the tokens of the rows since the last block, in row order
        terms: list[np.ndarray] = []
        fields: dict[str, tuple[list[int], list[Any]]] = {}  # field -> (rows, values) of the rows that have it

        def flush() -> None:
            """Token ids of the pending rows: mapped at C speed, a block at a time, so that
            a million chunks' tokens are never Python strings all at once."""
            new = [t for t in dict.fromkeys(pending) if t not in vocab]
            vocab.update(zip(new, range(len(vocab), len(vocab) + len(new))))
            terms.append(np.fromiter(map(vocab.__getitem__, pending), np.int32, len(pending)))
            pending.clear()

        for row, (cid, meta, text) in enumerate(chunks):
            meta = dict(meta)  # rows from the store's journal are shared: leave them as they are
            tokens = meta.pop("tokens", "").split()
            for key in _TABLE_DROP:
                meta.pop(key, None)
            for key, val in meta.items():
                if val is not None:
                    field = fields.get(key)
                    if field is None:
                        field = fields[key] = ([], [])
                    field[0].append(row)
                    field[1].append(val)
            ids.append(cid)
            texts.append(text.encode("utf-8"))
            lengths.append(len(tokens))
            pending.extend(tokens)
            if len(pending) > 2_000_000:
                flush()
        flush()
        n = len(ids)
        columns = {key: _column(n, rows, vals) for key, (rows, vals) in fields.items()}
        fields.clear()
        text_offsets = np.zeros(n + 1, np.int64)
        text_offsets[1:] = np.cumsum([len(t) for t in texts])
        text_blob = np.frombuffer(b"".join(texts), np.uint8)
        del texts
        doc_len = np.asarray(lengths, np.float32)
        if n == 0 or not vocab:
            return cls(tag, ids, columns, text_blob, text_offsets, vocab, np.zeros(len(vocab) + 1, np.int64),
                       np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.uint16), doc_len)
        # (term, row) pairs with their counts: one sort of term * n + row gives postings by term
        term = np.concatenate(terms)
        terms.clear()
        key = term.astype(np.int64) * n + np.repeat(np.arange(n, dtype=np.int64), doc_len.astype(np.int64))
        del term
        key, tf = np.unique(key, return_counts=True)
        term, row_of = (key // n).astype(np.int32), (key % n).astype(np.int32)
        del key
        df = np.bincount(term, minlength=len(vocab))
        tf = np.minimum(tf, np.iinfo(np.uint16).max).astype(np.uint16)
        indptr = np.zeros(len(vocab) + 1, np.int64)
        indptr[1:] = np.cumsum(df)
        return cls(tag, ids, columns, text_blob, text_offsets, vocab, indptr, row_of,
                   _weights(term, tf, row_of, df, doc_len), tf, doc_len)

    def updated(self, tag: str, events: list[tuple[str, Any]]) -> "LexicalIndex":
        """This index with a store journal's events applied (see ``store.rows.Journal``): rows
        written over are dropped, new rows are appended, and every weight is recomputed
        from the term frequencies, so scores equal those of a rebuild from the store.

        Costs a pass over the postings (seconds at 1,000,000 chunks), not a read of the store."""
        parts: list[LexicalIndex] = [self]
        keep: list[np.ndarray] = [np.ones(len(self), bool)]
        where: dict[str, tuple[int, int]] = {}  # chunk id -> (part, row), for parts after the first

        def locate(cid: str) -> tuple[int, int] | None:
            hit = where.get(cid)
            if hit is None and cid in self.pos:
                return 0, self.pos[cid]
            return hit

        def drop(cids: Iterable[str]) -> None:
            for cid in cids:
                hit = locate(cid)
                if hit is not None:
                    keep[hit[0]][hit[1]] = False

        for kind, payload in events:
            if kind == "rows":
                drop(cid for cid, _, _ in payload)
                part = LexicalIndex.build(tag, payload)
                where.update((cid, (len(parts), row)) for row, cid in enumerate(part.ids))
                parts.append(part)
                keep.append(np.ones(len(part), bool))
            elif kind == "drop_ids":
                drop(payload)
            elif kind == "drop_doc":
                for p, part in enumerate(parts):
                    rows = part._values("doc_id").get(str(payload))
                    if rows is not None:
                        keep[p][rows] = False
            else:
                raise ValueError(f"unknown journal event {kind!r}")
        return _concat(tag, parts, keep)

    def text(self, row: int) -> str:
        return self.text_blob[self.text_offsets[row] : self.text_offsets[row + 1]].tobytes().decode("utf-8")

    def meta(self, row: int) -> dict[str, Any]:
        """The chunk's metadata as stored (without its tokens), put together from the columns."""
        out = {}
        for key, col in self.columns.items():
            val = col.get(row)
            if val is not None:
                out[key] = val
        return out

    def _add(self, terms: list[tuple[int, float]]) -> np.ndarray:
        out = np.zeros(len(self.ids), np.float32)
        for t, boost in terms:
            a, b = self.indptr[t], self.indptr[t + 1]
            out[self.rows[a:b]] += self.weights[a:b] * boost
        return out

    def postings(self, tokens: list[str]) -> int:
        """How many postings a query reads: what its BM25 costs."""
        ids = {self.vocab[t] for t in tokens if t in self.vocab}
        return int(sum(self.indptr[t + 1] - self.indptr[t] for t in ids))

    def scores(self, tokens: list[str], split: bool = False) -> np.ndarray:
        """BM25 score of every chunk. With ``split``, a query over more than
        ``SPLIT_POSTINGS`` postings is scored in two halves on two threads (numpy's
        scatter-add releases the GIL); at 1,000,000 chunks a query reads ≈ 1.9M postings
        (p50) and the split took BM25 p95 from ≈ 20 to ≈ 13 ms here. The halves are
        fixed by the query, so the result does not depend on timing."""
        terms = [(self.vocab[tok], 1.0 + 0.2 * (qtf - 1)) for tok, qtf in Counter(tokens).items() if tok in self.vocab]
        sizes = [int(self.indptr[t + 1] - self.indptr[t]) for t, _ in terms]
        if not split or sum(sizes) < SPLIT_POSTINGS:
            return self._add(terms)
        halves: tuple[list[tuple[int, float]], list[tuple[int, float]]] = ([], [])
        load = [0, 0]
        for size, term in sorted(zip(sizes, terms, strict=True), key=lambda st: (-st[0], st[1][0])):
            i = int(load[1] < load[0])
            halves[i].append(term)
            load[i] += size
        other = _SCORE_POOL.submit(self._add, halves[1])
        out = self._add(halves[0])
        out += other.result()
        return out

    def top(self, tokens: list[str], n: int, mask: np.ndarray | None = None,
            split: bool = False) -> list[tuple[int, float]]:
        """(row, score) of the ``n`` best chunks with a positive score, best first."""
        if not self.ids or not tokens:
            return []
        s = self.scores(tokens, split)
        if mask is not None:
            s = np.where(mask, s, 0.0)
        cand = np.flatnonzero(s > 0)
        # Partition the positive scores only: with a filter most scores tie at 0, and one
        # partition of the whole array then took 50 ms against 2 here (1M chunks).
        if len(cand) > n:
            cand = cand[np.argpartition(-s[cand], n - 1)[:n]]
        cand = cand[np.lexsort((cand, -s[cand]))]
        return [(int(i), float(s[i])) for i in cand]

    def _values(self, field: str) -> dict[str, np.ndarray]:
        """Rows of each value of ``field`` (as a string), made from its column on first use."""
        with self._lock:
            if field not in self._postings:
                acc: dict[str, np.ndarray] = {}
                col = self.columns.get(field)
                if col is not None and len(col.codes):
                    rows = np.repeat(np.arange(len(self.ids), dtype=np.int64), np.diff(col.indptr))
                    order = np.argsort(col.codes, kind="stable")
                    codes, rows = col.codes[order], rows[order]
                    cuts = np.flatnonzero(np.diff(codes)) + 1
                    for code, group in zip(codes[np.r_[0, cuts]], np.split(rows, cuts), strict=True):
                        key = str(col.values[code])
                        acc[key] = np.union1d(acc[key], group) if key in acc else group
                self._postings[field] = acc
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
        names = list(self.columns)
        head = json.dumps({"version": _SIDECAR_VERSION, "tag": self.tag})
        header = json.dumps({"ids": self.ids,
                             "vocab": sorted(self.vocab, key=self.vocab.__getitem__),
                             "columns": [{"name": k, "values": self.columns[k].values,
                                          "is_list": self.columns[k].is_list} for k in names]},
                            ensure_ascii=False)
        arrays = {f"c{i}_indptr": self.columns[k].indptr for i, k in enumerate(names)}
        arrays.update({f"c{i}_codes": self.columns[k].codes for i, k in enumerate(names)})
        with atomic_file(path, "wb") as f:
            np.savez(f, head=np.frombuffer(head.encode("utf-8"), np.uint8),
                     header=np.frombuffer(header.encode("utf-8"), np.uint8), indptr=self.indptr,
                     rows=self.rows, weights=self.weights, tf=self.tf, doc_len=self.doc_len, text_blob=self.text_blob,
                     text_offsets=self.text_offsets, **arrays)

    @classmethod
    def load(cls, path: Path, tag: str) -> "LexicalIndex | None":
        """The saved index if it was built for ``tag`` (collection and generation), else None."""
        try:
            data = _mapped(path)
            head = json.loads(data["head"].tobytes().decode("utf-8"))  # small: a stale index is told cheaply
            if head.get("version") != _SIDECAR_VERSION or head.get("tag") != tag:
                return None
            header = json.loads(data["header"].tobytes().decode("utf-8"))
            vocab = {t: i for i, t in enumerate(header["vocab"])}
            columns = {c["name"]: _Column(c["values"], c["is_list"], data[f"c{i}_indptr"], data[f"c{i}_codes"])
                       for i, c in enumerate(header["columns"])}
            return cls(tag, header["ids"], columns, data["text_blob"], data["text_offsets"], vocab,
                       data["indptr"], data["rows"], data["weights"], data["tf"], data["doc_len"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError,
                UnicodeDecodeError):
            return None


def _mapped(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed ``.npz``, memory-mapped rather than read.

    At 1,000,000 chunks the file is ≈ 1.4 GB: reading it took 5–6 s with a cold page cache;
    mapped, opening reads the header only, each query touches the postings it needs, and
    processes serving the same store share one copy in the page cache. A file the writer
    replaces stays valid for readers that still map it (rename keeps the old inode)."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as raw, zipfile.ZipFile(raw) as zf:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise ValueError(f"{path}: {info.filename} is not a stored .npy member")
            raw.seek(info.header_offset)
            local = raw.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path}: bad local header for {info.filename}")
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30],
                                                                                                        "little")
            raw.seek(start)
            version = np.lib.format.read_magic(raw)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(raw)
            count = int(np.prod(shape))
            name = info.filename[: -len(".npy")]
            if count == 0:
                out[name] = np.zeros(shape, dtype)
            else:
                out[name] = np.memmap(path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape,
                                      order="F" if fortran else "C")
    return out


def lexical_index(store: Store) -> LexicalIndex:
    """The BM25 index for the store's current generation: in memory, on disk, brought up
    to date from the index before this process's writes (the store's journal), or rebuilt."""
    tag = store.chunks_version()
    cached = store.derived.get("lexical")
    if cached is not None and cached.tag == tag:
        return cached
    path = store.local_dir / SIDECAR
    index = LexicalIndex.load(path, tag)
    if index is None:
        index = _from_journal(store, tag, cached, path)
        if index is None:
            index = LexicalIndex.build(tag, store.chunk_rows())
        try:
            index.save(path)
        except OSError:
            pass  # a read-only store folder still searches, it just rebuilds per process
    store.journal.indexed(int(tag.rsplit(":", 1)[1]))
    store.derived["lexical"] = index
    return index


def _from_journal(store: Store, tag: str, cached: LexicalIndex | None, path: Path) -> LexicalIndex | None:
    """The index for ``tag`` made from the one before this process's writes, when the
    journal covers every write since it (no other process wrote in between)."""
    collection, generation = tag.rsplit(":", 1)
    start = store.journal.covers()
    events = store.journal.since(start, int(generation)) if start is not None else None
    if not events:
        return None
    base_tag = f"{collection}:{start}"
    base = cached if cached is not None and cached.tag == base_tag else LexicalIndex.load(path, base_tag)
    # With no index of the generation before, the journal may still hold the whole store
    # (a new store, or every old row written over): the count below tells.
    index = (base or LexicalIndex.build(base_tag, [])).updated(tag, events)
    return index if len(index) == store.counts()["chunks"] else None
