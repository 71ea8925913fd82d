"""Hybrid retrieval: BM25 fused with vector hits by reciprocal rank fusion (k = 60), which needs
no score calibration (E5 cosines sit in a narrow band, BM25 scores are unbounded)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from llmstruct.schema import Hit
from llmstruct.search.filters import parse_filters
from llmstruct.search.lexical import RRF_K, SPLIT_POSTINGS, LexicalIndex, lexical_index
from llmstruct.store.store import Store
from llmstruct.text.tokens import analyze, tokenize

Mode = Literal["hybrid", "vector", "bm25"]

MODES: tuple[str, ...] = ("hybrid", "vector", "bm25")


# Largest unfiltered vector query used to serve a filtered one (≈ 20 ms at 100k chunks).
OVERSAMPLE_CAP = 1000

_QUERY_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llmstruct-query-embed")


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


def _vector_hits(store: Store, lex: LexicalIndex, qvec: np.ndarray, pool: int,
                 mask: np.ndarray | None) -> list[tuple[str, float]]:
    """Vector hits, filtered: from an oversampled unfiltered query when the filter keeps
    enough of the store, else by a query restricted to the ids the filter keeps.

    The filter is decided by the lexical index's columns (chunk metadata in Chroma is one
    ``doc_id`` and the part holding its row, see ``store.rows.pack_rows``); a selective filter (one document) passes the
    few ids it keeps to Chroma, an unselective one reads past the rows it drops.
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
    return store.vector_query(qvec, pool, ids=[lex.ids[i] for i in np.flatnonzero(mask)], total=total)


def search(store: Store, query: str, k: int = 8, filters: dict[str, str] | None = None,
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
    # A one-thread query embedding (C code, GIL released) runs on another core while BM25
    # runs here: hybrid costs the longer of the two. When the embedder's load rule says both
    # cores are free and the BM25 part is light, the embedding uses both cores after BM25
    # instead (a third busy thread would stall its OpenMP barriers). A heavy BM25 part (over
    # SPLIT_POSTINGS postings: a large store) is overlapped all the same: at 1,000,000 chunks
    # overlapping gave hybrid p95 50.9 ms against 64.3 ms for BM25 and a two-thread embedding
    # in turn (same run). BM25 alone takes the second core (``split``) when both are free.
    embed = mode != "bm25"
    tokens = tokenize(query)
    spare = store.embedder.query_threads() > 1
    heavy = mode == "hybrid" and lex.postings(tokens) >= SPLIT_POSTINGS
    together = embed and (not spare or heavy)
    embedding = (_QUERY_POOL.submit(store.embedder.embed_queries_on_one_thread, [analyze(query)])
                 if together else None)  # started before the filters are read: it is the longer part
    clauses = parse_filters(filters, lex.known("units"))
    mask = lex.mask(clauses)
    if mask is not None and not mask.any():
        return []
    pool = max(k, candidates) if mode == "hybrid" else k
    vector: list[tuple[str, float]] = []
    lexical: list[tuple[str, float]] = []
    if mode in ("bm25", "hybrid"):
        lexical = [(lex.ids[i], s) for i, s in lex.top(tokens, pool, mask, split=spare and not together)]
    if embed:
        qvec = embedding.result()[0] if embedding is not None else store.embedder.embed_queries([analyze(query)])[0]
        vector = _vector_hits(store, lex, qvec, pool, mask)
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
            meta, text = lex.meta(lex.pos[cid]), lex.text(lex.pos[cid])
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
