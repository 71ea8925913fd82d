"""Passages for a plan: item slices of the original text, windows, BM25 re-ranking, retrieval."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.planning import Plan
from llmstruct.answer.terms import GENERIC_WORDS, bigrams, compact, content_terms
from llmstruct.schema import DocumentRecord, Hit, TaskItem
from llmstruct.search.hybrid import search
from llmstruct.store.store import Store
from llmstruct.text import bm25
from llmstruct.text.normalize import NormText, drop_inline_spaces, normalize

PASSAGE_CHARS = 220

MAX_PASSAGES = 5


def item_hits(record: DocumentRecord, item: TaskItem, original: str) -> list[Hit]:
    """An item's passages: its task (with leaders and units) and each progress block, as
    contiguous slices of the original text."""
    hits: list[Hit] = []
    meta: dict[str, str | int | float | bool] = {"seq_no": item.seq_no if item.seq_no is not None else -1,
                                                  "heading": item.heading, "kind": item.kind}
    task_spans = list(item.task.spans) + [ld.span for ld in item.leaders] + [s for u in item.units for s in u.spans]
    if task_spans:
        a, b = min(s.start for s in task_spans), max(s.end for s in task_spans)
        hits.append(Hit(chunk_id=f"{item.item_id}:task", doc_id=record.doc_id, item_id=item.item_id,
                        source_file=record.source_file, start=a, end=b, text=original[a:b], kind="task", metadata=meta))
    for k, p in enumerate(item.progress):
        spans = list(p.text.spans) + ([p.reporting_unit.span] if p.reporting_unit else [])
        a, b = min(s.start for s in spans), max(s.end for s in spans)
        hits.append(Hit(chunk_id=f"{item.item_id}:progress{k}", doc_id=record.doc_id, item_id=item.item_id,
                        source_file=record.source_file, start=a, end=b, text=original[a:b], kind="progress", metadata=meta))
    return hits


def catalog_hits(catalog: Catalog, doc_ids: Sequence[str] | None = None) -> list[Hit]:
    """Every item passage of the catalog's documents (those with their text loaded)."""
    out: list[Hit] = []
    for rec in catalog.records.values():
        if doc_ids and rec.doc_id not in doc_ids:
            continue
        text = catalog.texts.get(rec.doc_id)
        if text is None:
            continue
        for it in rec.items:
            out += item_hits(rec, it, text)
    return out


@dataclass(frozen=True)
class Passage:
    """A retrieved hit plus its clean view: what the model reads and what quotes align to."""

    hit: Hit
    clean: NormText

    @classmethod
    def of(cls, hit: Hit) -> "Passage":
        nt, _ = normalize(hit.text)
        nt = drop_inline_spaces(nt).sub(r"\s*\n\s*", "")
        return cls(hit, nt)

    @property
    def text(self) -> str:
        return self.clean.text


def coverage(terms: Sequence[str], text: str) -> float:
    """Keyword evidence strength: the weighted share of the question's words found in
    ``text`` (generic words such as 任务/目标 count half)."""
    if not terms:
        return 0.0
    flat = compact(text)
    weights = [(len(t) * (0.5 if t in GENERIC_WORDS else 1.0), t in flat) for t in terms]
    total = sum(w for w, _ in weights)
    return sum(w for w, ok in weights if ok) / total if total else 0.0


def bm25_rank(terms: Sequence[str], passages: Sequence[Passage]) -> list[float]:
    """BM25 scores over character bigrams (Chinese words are often two characters)."""
    grams = [g for t in terms for g in bigrams(t)]
    if not passages or not grams:
        return [0.0] * len(passages)
    docs = [Counter(p.text[i:i + 2] for i in range(len(p.text) - 1)) for p in passages]
    avg = sum(sum(d.values()) for d in docs) / len(docs) or 1.0
    df = Counter(g for d in docs for g in set(grams) if g in d)
    n = len(docs)
    scores = []
    for d in docs:
        length = sum(d.values())
        s = 0.0
        for g in set(grams):
            tf = d.get(g, 0)
            if tf:
                s += float(bm25.weight(bm25.idf(df[g], n), tf, length, avg))
        scores.append(s)
    return scores


def sub_passage(passage: Passage, a: int, b: int) -> Passage:
    """Clean range ``[a, b)`` of a passage as its own passage (still an exact slice of the file)."""
    span = passage.clean.span(a, b)
    hit = passage.hit
    return Passage.of(hit.model_copy(update={"start": hit.start + span.start, "end": hit.start + span.end, "text": span.text}))


def windows(passage: Passage, width: int = PASSAGE_CHARS) -> list[Passage]:
    """A long passage cut at sentence ends into windows of at most about ``width`` clean
    characters (the model reads short, focused evidence faster and better)."""
    text = passage.text
    if len(text) <= width * 1.3:
        return [passage]
    ends = [m.end() for m in re.finditer(r"[。；;！？]", text)]
    out, a = [], 0
    while a < len(text):
        limit = a + width
        cut = max((e for e in ends if a < e <= limit), default=None)
        if cut is None or len(text) - a <= width * 1.3:
            cut = len(text) if len(text) - a <= width * 1.3 else limit
        out.append(sub_passage(passage, a, cut))
        a = cut
    return out


def retrieve(question_plan: Plan, catalog: Catalog, store: Store | None = None, k: int = MAX_PASSAGES,
             filters: dict[str, str] | None = None) -> list[Hit]:
    """Passages for a plan: the store's hybrid search (per document when the plan names
    several places) when a store is given, else BM25 over the catalog's item passages;
    both re-ranked by BM25 on the question's content and focused to a short window."""
    terms = question_plan.keywords or content_terms(question_plan.standalone, catalog)
    docs = list(question_plan.doc_ids)
    if filters and filters.get("doc_id"):
        docs = [filters["doc_id"]]
    groups: list[list[Hit]] = []
    if store is not None:
        base = {k2: v for k2, v in (filters or {}).items() if v}
        query = question_plan.standalone
        if docs:
            for d in docs:
                groups.append(search(store, query, k=max(k, 8), filters={**base, "doc_id": d}))
        else:
            groups.append(search(store, query, k=max(2 * k, 8), filters=base or None))
    else:
        for d in docs or [None]:
            groups.append(catalog_hits(catalog, [d] if d else None))
    # the store still holds documents whose source has changed or gone bad: never cite them
    groups = [[h for h in hits if h.doc_id not in catalog.unavailable] for hits in groups]
    out: list[Passage] = []
    per_group = max(1, k // max(1, len(groups))) if len(groups) > 1 else k
    for hits in groups:
        passages = [w for h in hits if h.text.strip() for w in windows(Passage.of(h))]
        scores = bm25_rank(terms, passages)
        if question_plan.item_no is not None:
            scores = [s + (5.0 if p.hit.metadata.get("seq_no") == question_plan.item_no else 0.0)
                      for s, p in zip(scores, passages)]
        ranked = sorted(zip(scores, range(len(passages))), key=lambda x: -x[0])
        picked = [passages[i] for s, i in ranked[:per_group] if s > 0]
        out += picked
    seen: set[tuple[str, int, int]] = set()
    hits_out: list[Hit] = []
    for p in out:
        key = (p.hit.source_file, p.hit.start, p.hit.end)
        if key not in seen:
            seen.add(key)
            hits_out.append(p.hit)
    return hits_out[:max(k, len(groups))]


def merge_hits(groups: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    """Hits of several retrievals, round-robin so each keeps its best, without repeats."""
    out: list[Hit] = []
    seen: set[tuple[str, int, int]] = set()
    for rank in range(max((len(g) for g in groups), default=0)):
        for g in groups:
            if rank < len(g):
                key = (g[rank].source_file, g[rank].start, g[rank].end)
                if key not in seen and len(out) < limit:
                    seen.add(key)
                    out.append(g[rank])
    return out
