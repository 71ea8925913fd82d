"""Hybrid retrieval over the store: BM25 on jieba words fused with vector hits.

Chroma's local full-text search is a trigram index, so a two-character word such as 滞后
or 统计 never matches. BM25 here runs over jieba's search-mode segmentation of the clean,
Simplified text (Traditional queries and documents meet in the middle), from an inverted
index held in numpy arrays. The index is derived data: it is rebuilt from the chunks in
Chroma whenever the store's generation changes, and kept beside the Chroma data
(``bm25.npz``) so the next process only loads it.

Vector hits come from Chroma (E5 query role). Hybrid fuses the two rankings by reciprocal
rank fusion (k = 60), which needs no score calibration: E5 cosines sit in a narrow band
and BM25 scores are unbounded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from llmstruct.normalize import clean_text, normalize, to_simplified
from llmstruct.schema import Hit
from llmstruct.units import canonical_unit

if TYPE_CHECKING:
    from llmstruct.store import Store

Mode = Literal["hybrid", "vector", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "vector", "bm25")
RRF_K = 60
BM25_K1, BM25_B = 1.2, 0.75
SIDECAR = "bm25.npz"
# Largest unfiltered vector query used to serve a filtered one (≈ 20 ms at 100k chunks).
OVERSAMPLE_CAP = 1000
_SIDECAR_VERSION = 1
_QUERY_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llmstruct-query-embed")

# Function words and question words: they carry no topic and only add noise to BM25.
_STOPWORDS = frozenset(
    "的 了 和 与 及 或 在 是 对 等 为 将 把 被 由 从 向 以 于 之 其 这 那 也 都 并 而 及其 有 有没有 "
    "哪些 哪个 哪 哪里 什么 多少 几 几项 几个 吗 呢 吧 啊 怎么 怎样 如何 是否 请问 一下 目前 现在 "
    "个 项 中 上 下 年度".split()
)
_TOKEN_OK = re.compile(r"[\w\u3400-\u9fff%]")


def analyze(text: str) -> str:
    """Clean, Simplified text: normalisation as for structuring, lines joined, t2s."""
    nt, _ = normalize(text)
    return to_simplified(clean_text(nt.text))


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """BM25 tokens: jieba search-mode words of the analysed text, stopwords dropped.

    Search mode also emits the short words inside long ones (统计局 -> 统计, 统计局), so a
    query term matches whichever granularity the document was cut at.
    """
    out = []
    for tok in _jieba().cut_for_search(analyze(text)):
        tok = tok.strip().lower()
        if tok and tok not in _STOPWORDS and _TOKEN_OK.search(tok) and not tok.isspace():
            out.append(tok)
    return out


# --------------------------------------------------------------------------- filters

_FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    "region": ("region",),
    "year": ("year",),
    "document": ("doc_id", "source_stem", "source_file"),
    "unit": ("units",),
    "status": ("statuses",),
    "kind": ("kind",),
    "doc_type": ("doc_type",),
    "leader": ("leaders",),
    "item": ("item_id",),
}
_FILTER_ALIASES = {"doc": "document", "doc_id": "document", "file": "document", "units": "unit",
                   "item_id": "item", "type": "doc_type", "period": "year", "leaders": "leader"}
_LIST_FIELDS = frozenset({"region", "units", "statuses", "leaders"})
STATUS_ALIASES = {
    "已完成": "completed", "完成": "completed", "滞后": "behind", "落后": "behind", "进展滞后": "behind",
    "推进中": "in_progress", "进行中": "in_progress", "正在推进": "in_progress", "未开始": "not_started",
    "未启动": "not_started", "搁置": "suspended", "暂缓": "suspended", "计划": "planned", "未知": "unknown",
}
STATUSES = ("completed", "in_progress", "behind", "not_started", "suspended", "planned", "unknown")


@dataclass(frozen=True)
class Clause:
    """One filter: the row matches when any (field, value) pair matches."""

    key: str
    pairs: tuple[tuple[str, str], ...]


def filter_keys() -> list[str]:
    return sorted(_FILTER_FIELDS)


def parse_filters(filters: dict[str, str] | None, known_units: Iterable[str] = ()) -> list[Clause]:
    """Filters as clauses; unknown keys raise ValueError (a usage error, not a miss).

    ``unit`` is canonicalised (县发改局 = 县发展和改革局); a unit given without its level
    prefix (统计局) matches every known unit that ends with it. ``status`` accepts the
    schema values and Chinese words (滞后, 已完成 ...). Values are mapped to Simplified.
    """
    clauses = []
    for raw_key, raw_value in (filters or {}).items():
        key = _FILTER_ALIASES.get(raw_key.strip().lower(), raw_key.strip().lower())
        if key not in _FILTER_FIELDS:
            raise ValueError(f"unknown filter {raw_key!r}; use one of {', '.join(filter_keys())}")
        value = to_simplified(str(raw_value).strip())
        if not value:
            raise ValueError(f"empty value for filter {raw_key!r}")
        if key == "unit":
            values = units_matching(value, known_units)
        elif key == "status":
            status = STATUS_ALIASES.get(value, value.lower())
            if status not in STATUSES:
                raise ValueError(f"unknown status {raw_value!r}; use one of {', '.join(STATUSES)}")
            values = [status]
        else:
            values = [value]
        clauses.append(Clause(key, tuple((f, v) for f in _FILTER_FIELDS[key] for v in values)))
    return clauses


_LEVEL = re.compile(r"^(县委|区委|市委|县|区|市|镇|街道)")


def units_matching(name: str, known_units: Iterable[str]) -> list[str]:
    """Canonical unit names meant by ``name``: itself, or with any level prefix when none given."""
    canon = canonical_unit(name)
    if _LEVEL.match(canon):
        return [canon]
    matches = [u for u in known_units if u == canon or (u.endswith(canon) and _LEVEL.match(u[: len(u) - len(canon)]))]
    return sorted(set(matches) | {canon})


def chroma_where(clauses: list[Clause]) -> dict | None:
    """The same clauses as a Chroma ``where`` (lists use ``$contains``)."""
    parts = []
    for clause in clauses:
        ors = [{f: {"$contains": v}} if f in _LIST_FIELDS else {f: v} for f, v in clause.pairs]
        parts.append(ors[0] if len(ors) == 1 else {"$or": ors})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


# --------------------------------------------------------------------------- BM25 index


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
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg = float(doc_len.mean()) or 1.0
        norm = BM25_K1 * (1 - BM25_B + BM25_B * doc_len[row_of] / avg)
        weights = (idf[term] * tf * (BM25_K1 + 1) / (tf + norm)).astype(np.float32)
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
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, header=np.frombuffer(header.encode("utf-8"), np.uint8), indptr=self.indptr,
                         rows=self.rows, weights=self.weights)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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


def lexical_index(store: "Store") -> LexicalIndex:
    """The BM25 index for the store's current generation: in memory, on disk, or rebuilt."""
    from llmstruct.store import CHUNKS

    gen = store.sync()
    col_id = store._chroma("reading the store", lambda: str(store._col(CHUNKS).id))
    tag = f"{col_id}:{gen}"
    cached = store._retrieval_cache.get("lexical")
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
    store._retrieval_cache["lexical"] = index
    return index


# --------------------------------------------------------------------------- search


def rrf(rankings: list[list[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank), rank from 1."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


_HIT_META = ("title", "doc_type", "year", "province", "city", "county", "town", "seq_no", "item_kind", "heading",
             "units", "leaders", "status", "reporting_unit", "progress_status", "source_stem")


def _hit(cid: str, meta: dict[str, Any], text: str, score: float, extra: dict[str, Any]) -> Hit:
    flat: dict[str, str | int | float | bool] = {}
    for key in _HIT_META:
        val = meta.get(key)
        if isinstance(val, list):
            flat[key] = "、".join(str(v) for v in val)
        elif val is not None:
            flat[key] = val
    if meta.get("region"):
        flat["region"] = "".join(meta["region"])
    flat.update(extra)
    return Hit(chunk_id=cid, doc_id=meta.get("doc_id", ""), item_id=meta.get("item_id", ""),
               source_file=meta.get("source_file", ""), start=int(meta.get("start", 0)), end=int(meta.get("end", 0)),
               text=text, kind=meta.get("kind", "task"), score=round(float(score), 6), metadata=flat)


def _vector_hits(store: "Store", lex: LexicalIndex, qvec: np.ndarray, pool: int, clauses: list[Clause],
                 mask: np.ndarray | None) -> list[tuple[str, float]]:
    """Vector hits, filtered: from an oversampled unfiltered query when the filter keeps
    enough of the store, else through Chroma's ``where``.

    Chroma's filtered query pre-filters in SQLite and took ≈ 200 ms at 100k chunks here,
    against ≈ 15 ms for an unfiltered query of 500; a selective filter (one document)
    still goes through ``where``, which is then the right tool.
    """
    total = len(lex)
    if mask is None:
        return store.vector_query(qvec, pool, total=total)
    allowed = int(mask.sum())
    want = min(pool, allowed)
    n = min(total, max(pool, -(-pool * total * 3 // (2 * max(allowed, 1)))))
    if n <= OVERSAMPLE_CAP or n >= total:
        got = [(c, s) for c, s in store.vector_query(qvec, n, total=total)
               if c in lex.pos and mask[lex.pos[c]]]
        if len(got) >= want:
            return got[:pool]
    return store.vector_query(qvec, pool, where=chroma_where(clauses), total=total)


def search(store: "Store", query: str, k: int = 8, filters: dict[str, str] | None = None,
           mode: Mode = "hybrid", candidates: int = 50) -> list[Hit]:
    """Ranked chunks for ``query``: ``hybrid`` (BM25 + vector by RRF), ``vector`` or ``bm25``.

    ``filters`` (all must hold): region (any level: 山东省, 临沂市, 临沭县, 姜屯镇), year,
    document (doc id or file stem), unit (canonicalised), status, kind (task/progress),
    doc_type, leader, item. ``score`` is the RRF score for hybrid, the cosine similarity
    for vector and the BM25 score for bm25; ``metadata`` carries the ranks in each list.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if k <= 0 or not query.strip():
        return []
    lex = lexical_index(store)
    clauses = parse_filters(filters, lex.known("units"))
    mask = lex.mask(clauses)
    if mask is not None and not mask.any():
        return []
    pool = max(k, candidates) if mode == "hybrid" else k
    vector: list[tuple[str, float]] = []
    lexical: list[tuple[str, float]] = []
    # A one-thread query embedding (C code, GIL released) runs on another core while BM25
    # runs here: hybrid costs the longer of the two. One that uses every core runs after
    # BM25 instead, since a third busy thread would stall its OpenMP barriers.
    embed = mode != "bm25"
    together = embed and getattr(store.embedder, "query_threads", lambda: 1)() <= 1
    embedding = _QUERY_POOL.submit(store.embedder.embed_queries, [analyze(query)]) if together else None
    if mode in ("bm25", "hybrid"):
        lexical = [(lex.ids[i], s) for i, s in lex.top(tokenize(query), pool, mask)]
    if embed:
        qvec = embedding.result()[0] if embedding is not None else store.embedder.embed_queries([analyze(query)])[0]
        vector = _vector_hits(store, lex, qvec, pool, clauses, mask)
    if mode == "vector":
        ranked = vector
    elif mode == "bm25":
        ranked = lexical
    else:
        ranked = rrf([[c for c, _ in vector], [c for c, _ in lexical]])
    ranked = ranked[:k]
    vrank = {c: r for r, (c, _) in enumerate(vector, start=1)}
    brank = {c: r for r, (c, _) in enumerate(lexical, start=1)}
    missing = [c for c, _ in ranked if c not in lex.pos]
    fetched = store.get_chunks(missing)
    hits = []
    for cid, score in ranked:
        if cid in lex.pos:
            meta = lex.table[lex.pos[cid]]
            text = meta["text"]
        elif cid in fetched:
            meta, text = fetched[cid]
        else:
            continue
        extra: dict[str, Any] = {}
        if cid in vrank:
            extra["vector_rank"] = vrank[cid]
        if cid in brank:
            extra["bm25_rank"] = brank[cid]
        hits.append(_hit(cid, meta, text, score, extra))
    return hits


__all__ = ["MODES", "Clause", "LexicalIndex", "analyze", "chroma_where", "lexical_index", "parse_filters", "rrf",
           "search", "tokenize", "units_matching"]
