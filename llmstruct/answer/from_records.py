"""Answers computed from the structured records: counts and lists by leader, unit or status,
and who leads a named item, every item cited at the span its names were read from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.planning import Plan
from llmstruct.answer.refusal import REFUSAL, Refusal, refusal
from llmstruct.answer.terms import ASKS_NUMBER, simplify
from llmstruct.schema import Answer, Citation, DocumentRecord, TaskItem
from llmstruct.search.records import query_items
from llmstruct.store.store import Store
from llmstruct.vocab import VOCAB


def _item_label(catalog: Catalog, rec: DocumentRecord, it: TaskItem) -> str:
    no = f"第{it.seq_no}项" if it.seq_no is not None else (it.heading or it.item_id.split("#")[-1])
    return no


def _assignment_span(it: TaskItem, names: Sequence[str], original: str) -> tuple[int, int] | None:
    spans = [s for ld in it.leaders if ld.name in names for s in [ld.span]]
    spans += [s for u in it.units if u.name in names or u.canonical in names for s in u.spans]
    if not spans:
        return None
    a, b = min(s.start for s in spans), max(s.end for s in spans)
    # widen to the printed assignment clause, e.g. （责任领导：庄金才、刘洪明；责任单位：…）
    opens = [original.rfind(ch, max(0, a - 24), a) for ch in "（("]
    closes = [c for c in (original.find(ch, b, b + 80) for ch in "）)") if c >= 0]
    if max(opens) >= 0 and closes and "\n\n" not in original[max(opens):min(closes)]:
        a, b = max(opens), min(closes) + 1
    return a, b


def _status_basis(it: TaskItem, status: str) -> tuple[tuple[int, int], str] | None:
    """The span that decided an item's status and the judgement's explanation: the assessed
    figure, else the decisive words."""
    for p in it.progress:
        if p.status != status:
            continue
        a = p.assessment
        if a is not None and a.status == status:
            return (a.actual.start, a.actual.end), a.explanation
        if p.status_cue is not None:
            return (p.status_cue.start, p.status_cue.end), ""
    return None


def select_items(catalog: Catalog, p: Plan, store: Store | None = None) -> list[tuple[DocumentRecord, TaskItem]]:
    """Items matching the plan's record filters (leader, unit and roles, status, documents)."""
    if store is not None:
        return _store_items(store, catalog, p)
    out = []
    for rec in catalog.records.values():
        if p.doc_ids and rec.doc_id not in p.doc_ids:
            continue
        spellings = catalog.leader_names(p.leader, rec.doc_id) if p.leader else []
        for it in rec.items:
            if p.leader and not {ld.name for ld in it.leaders} & set(spellings):
                continue
            if p.unit:
                roles = [u.role for u in it.units if p.unit in (u.canonical, u.name)]
                if not roles or (p.roles and not set(roles) & set(p.roles)):
                    continue
            if p.status and it.status != p.status:
                continue
            out.append((rec, it))
    return out


def _store_items(store: Store, catalog: Catalog, p: Plan) -> list[tuple[DocumentRecord, TaskItem]]:
    found: dict[str, tuple[DocumentRecord, TaskItem]] = {}
    spellings = _spellings(catalog, p)
    for doc in p.doc_ids or [None]:
        for role in p.roles or [None]:
            for row in (r for name in spellings for r in query_items(store, unit=p.unit, role=role, leader=name,
                                                                     status=p.status, doc_id=doc)):
                item_id = getattr(row, "item_id", None) or (row.get("item_id") if isinstance(row, dict) else None)
                got = catalog.item(item_id) if item_id else None
                if got:
                    found[item_id] = got
    return sorted(found.values(), key=lambda x: (x[0].doc_id, x[1].seq_no or 0))


def _spellings(catalog: Catalog, p: Plan) -> list[str | None]:
    """The leader asked about as each document writes them (variants merged), or [None]."""
    if not p.leader:
        return [None]
    docs = p.doc_ids or list(catalog.records)
    return list(dict.fromkeys(n for d in docs for n in catalog.leader_names(p.leader, d)))


def _merged_note(catalog: Catalog, p: Plan, items: list[tuple[DocumentRecord, TaskItem]],
                 labels: list[str]) -> str:
    """Which items were counted under a variant spelling of the leader, and why."""
    notes = []
    for doc_id in dict.fromkeys(rec.doc_id for rec, _ in items):
        usual, *variants = catalog.leader_names(p.leader or "", doc_id)
        for v in variants:
            where = [labels[k] for k, (r, it) in enumerate(items)
                     if r.doc_id == doc_id and v in {ld.name for ld in it.leaders}]
            if where:
                notes.append(f"其中{'、'.join(where)}写作“{v}”，与“{usual}”仅一字之差，同一文件中仅此"
                             f"{len(where)}处，按同一人计入")
    return "（" + "；".join(notes) + "）" if notes else ""


def records_answer(question: str, p: Plan, catalog: Catalog, store: Store | None = None) -> Answer | None:
    """Count/list answers computed from the structured records, every item cited; None when
    the plan has nothing the records can filter by."""
    if not (p.leader or p.unit or p.status):
        return None
    items = select_items(catalog, p, store)
    if not items:
        return Answer(question=question, answer=REFUSAL, refused=True, refusal="no_matching_items")
    names = [n for n in (p.leader, p.unit) if n] + [n for n in _spellings(catalog, p) if n]
    if p.unit:
        names += [name for name, canon in catalog.units.items() if canon == p.unit]
    citations, labels = [], []
    for n, (rec, it) in enumerate(items, start=1):
        original = catalog.texts.get(rec.doc_id)
        basis = _status_basis(it, p.status) if p.status and original else None
        if basis is not None:  # a status question: cite what decided it (the figure or the words)
            span, why = basis
            a, b = span
            citations.append(Citation(n=n, doc_id=rec.doc_id, source_file=rec.source_file, start=a, end=b,
                                      quote=original[a:b]))
            labels.append(f"{_item_label(catalog, rec, it)}{f'（{why}）' if why else ''}[{n}]")
            continue
        span = _assignment_span(it, names, original) if original else None
        if span is None and original is not None and it.task.spans:
            s = it.task.spans[0]
            span = (s.start, min(s.end, s.start + 40))
        if span is None or original is None:
            continue
        a, b = span
        citations.append(Citation(n=n, doc_id=rec.doc_id, source_file=rec.source_file, start=a, end=b, quote=original[a:b]))
        labels.append(f"{_item_label(catalog, rec, it)}[{n}]")
    leader = catalog.leader_names(p.leader, items[0][0].doc_id)[0] if p.leader else None
    who = leader or p.unit or ""
    how = "或".join(VOCAB.role(r)["label"] for r in p.roles) if p.roles else ("作为责任领导" if p.leader else "参与")
    docs = {rec.doc_id for rec, _ in items}
    where = "、".join(catalog.docs[d].place or d for d in sorted(docs))
    if not who and p.status:
        how = f"状态为“{VOCAB.status_label(p.status)}”"
    text = (f"按结构化记录，{where}文件中{who}{how}的任务共{len(items)}项：" + "、".join(labels)
            + (_merged_note(catalog, p, items, labels) if p.leader else "") + "。")
    return Answer(question=question, answer=text, refused=False, citations=citations)


_ASKS_LEADER = VOCAB.cue("leader")

_ASKS_UNITS = VOCAB.cue("units")

_ASKS_PROGRESS = VOCAB.cue("progress")


@dataclass(frozen=True)
class ItemFacts:
    """What the records say about the one item a question names (第N项 of one report)."""

    record: DocumentRecord
    item: TaskItem | None
    missing: Refusal | None = None


def item_facts(p: Plan, catalog: Catalog) -> ItemFacts | None:
    """The named item and, when the question asks for a field the item does not have
    (no 责任领导 printed, no 进展情况, no units), why it cannot be answered."""
    if p.item_no is None or len(p.doc_ids) != 1 or p.doc_ids[0] not in catalog.records:
        return None
    rec = catalog.records[p.doc_ids[0]]
    item = next((it for it in rec.items if it.seq_no == p.item_no), None)
    q = simplify(p.standalone)
    if item is None:
        return ItemFacts(rec, None, refusal("no_such_item", document=catalog.docs[rec.doc_id].label, item=p.item_no))
    if _ASKS_LEADER.search(q) and not item.leaders:
        return ItemFacts(rec, item, refusal("no_leader", item=p.item_no))
    if _ASKS_UNITS.search(q) and not item.units and not _ASKS_LEADER.search(q):
        return ItemFacts(rec, item, refusal("no_units", item=p.item_no))
    if _ASKS_PROGRESS.search(q) and not item.progress and not (_ASKS_LEADER.search(q) or _ASKS_UNITS.search(q)):
        return ItemFacts(rec, item, refusal("no_progress", item=p.item_no))
    return ItemFacts(rec, item)


def assignment_answer(question: str, p: Plan, facts: ItemFacts, catalog: Catalog) -> Answer | None:
    """Who leads / which units, for a named item, read from its record and cited at the
    spans the names were read from; None when the question asks for something else."""
    q = simplify(p.standalone)
    it = facts.item
    original = catalog.texts.get(facts.record.doc_id)
    if it is None or original is None or not (_ASKS_LEADER.search(q) or _ASKS_UNITS.search(q)):
        return None
    if _ASKS_PROGRESS.search(q) or ASKS_NUMBER.search(q):
        return None
    parts: list[str] = []
    citations: list[Citation] = []

    def cite(spans) -> str:
        a, b = min(sp.start for sp in spans), max(sp.end for sp in spans)
        n = len(citations) + 1
        citations.append(Citation(n=n, doc_id=facts.record.doc_id, source_file=facts.record.source_file,
                                  start=a, end=b, quote=original[a:b]))
        return f"[{n}]"

    if _ASKS_LEADER.search(q) and it.leaders:
        parts.append("责任领导为" + "、".join(ld.name for ld in it.leaders) + cite([ld.span for ld in it.leaders]))
    if _ASKS_UNITS.search(q):
        for role in ("lead", "responsible", "cooperating"):
            units = [u for u in it.units if u.role == role]
            if units:
                parts.append(f"{VOCAB.role(role)['unit_label']}为" + "、".join(u.name for u in units)
                             + cite([sp for u in units for sp in u.spans]))
    if not parts:
        return None
    label = f"第{it.seq_no}项" if it.seq_no is not None else it.item_id
    return Answer(question=question, answer=f"{label}：" + "；".join(parts) + "。", refused=False, citations=citations)
