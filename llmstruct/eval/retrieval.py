"""Retrieval scores: hit@k and MRR of a search function on the answerable gold questions.

A retrieved passage is relevant when its ``[start, end)`` overlaps a gold support quote in
the same source file, so the score does not depend on how the index chunked the text.
Unanswerable questions have no support and are left out.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from llmstruct.eval.answers import support_spans
from llmstruct.eval.gold import QUESTION_TYPES, GoldQuestion
from llmstruct.eval.matching import overlap, rnd
from llmstruct.schema import Hit

KS = (1, 3, 5, 8)

SearchFn = Callable[[str, int], list[Hit]]


def first_relevant(hits: list[Hit], spans: list[tuple[str, list[tuple[int, int]]]]) -> int | None:
    """1-based rank of the first hit overlapping a support quote, or None."""
    for rank, h in enumerate(hits, start=1):
        name = Path(h.source_file).name
        if any(f == name and any(overlap(sp, (h.start, h.end)) > 0 for sp in occ) for f, occ in spans):
            return rank
    return None


def score_ranks(ranks: dict[str, int | None], types: dict[str, str], ks: tuple[int, ...] = KS) -> dict:
    """hit@k and MRR from the rank of the first relevant hit per question."""

    def block(qids: list[str]) -> dict:
        n = len(qids)
        out: dict = {"questions": n}
        for k in ks:
            out[f"hit@{k}"] = rnd(sum(1 for q in qids if ranks[q] is not None and ranks[q] <= k) / n) if n else None
        out["mrr"] = rnd(sum(1 / ranks[q] for q in qids if ranks[q]) / n) if n else None
        return out

    by_type: dict[str, list[str]] = defaultdict(list)
    for q in ranks:
        by_type[types[q]].append(q)
    return {"overall": block(list(ranks)),
            "by_type": {t: block(by_type[t]) for t in QUESTION_TYPES if t in by_type}}


def run_retrieval(questions: list[GoldQuestion], search: SearchFn, texts: dict[str, str],
                  ks: tuple[int, ...] = KS) -> dict:
    """Search every answerable question once at the largest k and score the ranking."""
    ranks: dict[str, int | None] = {}
    types: dict[str, str] = {}
    secs: list[float] = []
    errors: dict[str, str] = {}
    for q in questions:
        if not q.answerable:
            continue
        types[q.id] = q.type
        t0 = time.perf_counter()
        try:
            hits = search(q.question, max(ks))
        except Exception as exc:  # one failing query is reported, the rest still run
            errors[q.id] = f"{type(exc).__name__}: {exc}"
            ranks[q.id] = None
            continue
        secs.append(time.perf_counter() - t0)
        ranks[q.id] = first_relevant(hits, support_spans(q, texts))
    out = score_ranks(ranks, types, ks)
    out["ranks"] = ranks
    out["errors"] = errors
    out["seconds_per_query_median"] = rnd(statistics.median(secs), 4) if secs else None
    return out


__all__ = ["KS", "first_relevant", "run_retrieval", "score_ranks"]
