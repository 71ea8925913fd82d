"""Extraction scores: records of any system against the hand-labelled gold items.

The gold labels 53 items, not every item of the seeds, so every count here is taken over
what the gold can judge: a gold item is found where its ``task_quote`` sits in the
original text (numbered items also by document and ``seq_no``), its fields are compared
with the fields of the predicted item found there, and predicted items elsewhere are
neither rewarded nor punished. Rates with nothing to count are ``None``, never 0 or 1.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from llmstruct.eval import gold as gold_mod
from llmstruct.eval.gold import GoldItem
from llmstruct.eval.matching import (
    PRF,
    Rate,
    bag_prf,
    gap,
    locate_near,
    name_match,
    norm,
    norm_measure,
    norm_unit_name,
    overlap,
    rnd,
    same_number,
)
from llmstruct.schema import DocumentRecord, Indicator, TaskItem, iter_spans
from llmstruct.structure.labeling import ApplyReport, apply_labels, build_job
from llmstruct.structure.pipeline import structure_file
from llmstruct.vocab import VOCAB

# A predicted item may start this many characters after the gold quote (a dropped “ or
# space) and still be the item the quote starts.
START_SLACK = 3
# ... or start before it by a lead-in of at most this many characters without a sentence end
# (综合考虑各方面的因素，今年…的主要预期目标是).
LEAD_IN = 40
_SENTENCE_END = set("。！？!?；;\n")
# A predicted figure and a gold figure quote this far apart are different figures.
FIGURE_GAP = 30
# The order in which statuses are "adverse", as the gold README labels mixed paragraphs.
STATUS_ORDER = VOCAB.status_severity
_COUNT_NOTE = re.compile(r"（共\d+项）$")
INDICATOR_FIELDS = ("name", "value", "unit", "qualifier", "kind", "change")


@dataclass(frozen=True)
class CallStat:
    """One model call for one item: what it cost and whether its output was usable."""

    item_id: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    valid: bool
    truncated: bool
    retries: int = 0


@dataclass(frozen=True)
class SystemRun:
    """What one extraction system produced for the gold documents, and what it cost.

    ``texts`` maps a source file name to its original text (what spans point into);
    ``items`` is how many items the system processed in ``seconds``.
    """

    name: str
    title: str
    records: dict[str, DocumentRecord]
    texts: dict[str, str]
    seconds: float
    items: int
    calls: tuple[CallStat, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Anchor:
    """A gold item located in its file: the task quote's span and its document's range."""

    gold: GoldItem
    key: str
    start: int
    end: int
    lo: int
    hi: int


def gold_key(item: GoldItem) -> str:
    """Stable id of a gold item: doc and seq_no, or doc and the quote's first characters."""
    return f"{item.doc}#{item.seq_no}" if item.seq_no is not None else f"{item.doc}@{item.task_quote[:12]}"


def anchor_gold(items: Iterable[GoldItem], texts: dict[str, str]) -> tuple[list[Anchor], list[str]]:
    """Locate every gold item's quote; items that cannot be located are reported, not dropped silently."""
    anchors, problems = [], []
    for it in items:
        text = texts.get(it.file)
        if text is None:
            problems.append(f"{gold_key(it)}: source {it.file} not read")
            continue
        bounds = gold_mod.doc_bounds(text, it.doc, Path(it.file).stem)
        if bounds is None:
            problems.append(f"{gold_key(it)}: doc not in {it.file}")
            continue
        pos = text.find(it.task_quote, *bounds)
        if pos < 0:
            problems.append(f"{gold_key(it)}: task_quote not in its document")
            continue
        anchors.append(Anchor(it, gold_key(it), pos, pos + len(it.task_quote), *bounds))
    return anchors, problems


def _start(item: TaskItem) -> int:
    return min(s.start for s in item.task.spans)


def _covers(item: TaskItem, pos: int) -> bool:
    return any(s.start <= pos < s.end for s in item.task.spans)


def assign(anchor: Anchor, record: DocumentRecord | None) -> TaskItem | None:
    """The predicted item a gold item is compared with: by seq_no when numbered, else by position."""
    if record is None:
        return None
    items = record.items
    near = [i for i in items if anchor.start <= _start(i) <= anchor.start + START_SLACK]
    cover = [i for i in items if _covers(i, anchor.start)]
    if anchor.gold.seq_no is not None:
        same = [i for i in items if i.seq_no == anchor.gold.seq_no]
        placed = [i for i in same if i in near or i in cover]
        return (placed or same or [None])[0]
    if near:
        return min(near, key=_start)
    return max(cover, key=_start) if cover else None


def boundary_ok(item: TaskItem, anchor: Anchor, text: str) -> bool:
    """The item starts where the gold item starts (a short lead-in of the same sentence allowed)."""
    s = _start(item)
    if anchor.start <= s <= anchor.start + START_SLACK:
        return True
    if s < anchor.start and _covers(item, anchor.start):
        lead = text[s:anchor.start]
        return len(lead) <= LEAD_IN and not (_SENTENCE_END & set(lead))
    return False



def _indicators(item: TaskItem) -> list[Indicator]:
    return list(item.targets) + [i for p in item.progress for i in p.indicators]


def _signed(ind: Indicator) -> float | None:
    if ind.value is None:
        return None
    if ind.change is not None and ind.change.direction == "down":
        return -abs(ind.value)
    return ind.value


@dataclass
class Tally:
    """Counts for one document (or all): PRF per field, rates per check."""

    prf: dict[str, PRF] = field(default_factory=lambda: defaultdict(lambda: PRF(0, 0, 0)))
    rates: dict[str, Rate] = field(default_factory=lambda: defaultdict(lambda: Rate(0, 0)))
    confusion: Counter = field(default_factory=Counter)  # (gold status, predicted status) -> entries

    def add(self, other: "Tally") -> None:
        for k, v in other.prf.items():
            self.prf[k] = self.prf[k] + v
        for k, v in other.rates.items():
            self.rates[k] = self.rates[k] + v
        self.confusion.update(other.confusion)


def _gold_indicators(anchor: Anchor, text: str):
    g = anchor.gold
    for q in list(g.targets) + [q for p in g.progress for q in p.indicators]:
        yield q, locate_near(text, q.quote, anchor.lo, anchor.hi, anchor.start)


def _pair_indicators(golds: list, preds: list[Indicator]) -> list[tuple[int, int]]:
    """One-to-one pairs (gold index, pred index): same absolute number, close in the text."""
    cands = []
    for gi, (q, gspan) in enumerate(golds):
        for pi, p in enumerate(preds):
            if p.value is None or not same_number(abs(q.value), abs(p.value)):
                continue
            pspan = (p.evidence.start, p.evidence.end)
            d = gap(gspan, pspan) if gspan else 0
            if d > FIGURE_GAP:
                continue
            cands.append((d, norm_measure(q.unit) != norm_measure(p.unit), gi, pi))
    used_g, used_p, pairs = set(), set(), []
    for _, _, gi, pi in sorted(cands):
        if gi not in used_g and pi not in used_p:
            used_g.add(gi)
            used_p.add(pi)
            pairs.append((gi, pi))
    return pairs


def _field_ok(name: str, q, p: Indicator) -> bool:
    if name == "name":
        return name_match(p.name, q.name)
    if name == "value":
        return same_number(q.value, _signed(p))
    if name == "unit":
        return norm_measure(q.unit) == norm_measure(p.unit)
    if name == "qualifier":
        return q.qualifier == p.qualifier
    if name == "kind":
        return q.kind == p.kind
    return q.change == (p.change is not None)


def _path(headings: list[str]) -> list[str]:
    """Headings compared without the printed item count (003's ``（共 17项）``), a decoration, not a heading."""
    return [_COUNT_NOTE.sub("", norm(h)) for h in headings]


def _worst(statuses: list[str]) -> str | None:
    return min(statuses, key=STATUS_ORDER.index) if statuses else None


def score_group(item: TaskItem | None, anchors: list[Anchor], text: str) -> Tally:
    """Fields of one predicted item against the gold items assigned to it (several when merged)."""
    t = Tally()
    golds = [a.gold for a in anchors]
    pred_units = [(norm_unit_name(u.name), u.role) for u in item.units] if item else []
    gold_units = [(norm_unit_name(u.name), u.role) for g in golds for u in g.units]
    t.prf["units"] = bag_prf(pred_units, gold_units)
    t.prf["unit_names"] = bag_prf([u for u, _ in pred_units], [u for u, _ in gold_units])
    t.prf["leaders"] = bag_prf([norm(x.name) for x in item.leaders] if item else [],
                               [norm(x) for g in golds for x in g.leaders])
    t.prf["deadlines"] = bag_prf([norm(d.text) for d in item.deadlines] if item else [],
                                 [norm(d) for g in golds for d in g.deadlines])
    g_inds = [gi for a in anchors for gi in _gold_indicators(a, text)]
    p_inds = _indicators(item) if item else []
    pairs = _pair_indicators(g_inds, p_inds)
    t.prf["indicators"] = PRF(len(pairs), len(p_inds), len(g_inds))
    for f in INDICATOR_FIELDS:
        ok = sum(_field_ok(f, g_inds[gi][0], p_inds[pi]) for gi, pi in pairs)
        t.prf[f"indicator_{f}"] = PRF(ok, len(p_inds), len(g_inds))
    exact = sum(all(_field_ok(f, g_inds[gi][0], p_inds[pi]) for f in INDICATOR_FIELDS if f != "name")
                for gi, pi in pairs)
    t.prf["indicators_exact"] = PRF(exact, len(p_inds), len(g_inds))
    for a in anchors:
        g = a.gold
        t.rates["section_path"] += Rate(int(item is not None and _path(item.section_path) == _path(g.section_path)), 1)
        t.rates["item_kind"] += Rate(int(item is not None and item.kind == g.kind), 1)
        if g.progress:
            worst = _worst([p.status for p in g.progress])
            t.rates["item_status"] += Rate(int(item is not None and item.status == worst), 1)
        for gp in g.progress:
            _score_progress(t, item, a, gp, text)
    return t


def _score_progress(t: Tally, item: TaskItem | None, a: Anchor, gp, text: str) -> None:
    qspan = locate_near(text, gp.quote, a.lo, a.hi, a.start)
    best, best_ov = None, 0
    for p in (item.progress if item else []):
        ov = max((overlap(qspan, (s.start, s.end)) for s in p.text.spans), default=0) if qspan else 0
        if ov > best_ov:
            best, best_ov = p, ov
    t.rates["progress_found"] += Rate(int(best is not None), 1)
    if gp.unit is not None:
        got = best.reporting_unit.name if best is not None and best.reporting_unit else ""
        t.rates["progress_unit"] += Rate(int(bool(got) and norm_unit_name(got) == norm_unit_name(gp.unit)), 1)
    t.rates["status"] += Rate(int(best is not None and best.status == gp.status), 1)
    if gp.status_cue is None:  # only the figures (or nothing) tell the status
        t.rates["status_no_cue"] += Rate(int(best is not None and best.status == gp.status), 1)
    t.confusion[(gp.status, (best.status if best is not None else None) or "none")] += 1
    if best is not None and best.status is not None:
        t.rates["status_when_stated"] += Rate(int(best.status == gp.status), 1)
    if gp.status_cue is not None:
        cspan = locate_near(text, gp.status_cue, qspan[0] if qspan else a.lo, a.hi, qspan[0] if qspan else a.start)
        cue = best.status_cue if best is not None else None
        t.rates["status_cue"] += Rate(int(cue is not None and cspan is not None
                                          and overlap(cspan, (cue.start, cue.end)) > 0), 1)


def score_system(run: SystemRun, gold_items: list[GoldItem]) -> dict:
    """Every extraction number for one system, overall and per document."""
    anchors, problems = anchor_gold(gold_items, run.texts)
    per_doc: dict[str, Tally] = defaultdict(Tally)
    groups: dict[tuple[str, str], list[Anchor]] = defaultdict(list)
    assigned: dict[tuple[str, str], TaskItem] = {}
    seg_gold: dict[str, Rate] = defaultdict(lambda: Rate(0, 0))
    ok_items: dict[str, set[str]] = defaultdict(set)
    per_item: dict[str, dict] = {}
    for a in anchors:
        rec = run.records.get(a.gold.doc)
        item = assign(a, rec)
        text = run.texts[a.gold.file]
        hit = item is not None and boundary_ok(item, a, text)
        if hit:
            ok_items[a.gold.doc].add(item.item_id)
        seg_gold[a.gold.doc] += Rate(int(hit), 1)
        per_item[a.key] = {"item_id": item.item_id if item else None, "segmented": hit}
        if item is None:
            per_doc[a.gold.doc].add(score_group(None, [a], text))
        else:
            groups[(a.gold.doc, item.item_id)].append(a)
            assigned[(a.gold.doc, item.item_id)] = item
    for key, group in groups.items():
        t = score_group(assigned[key], group, run.texts[group[0].gold.file])
        per_doc[key[0]].add(t)
        for a in group:
            per_item[a.key].update(_item_summary(assigned[key], a, t, shared=len(group)))
    judged = _judged_items(run, anchors, {k[1] for k in assigned})
    segs = {doc: PRF(len(ok_items[doc]), len(judged.get(doc, set()) | ok_items[doc]), seg_gold[doc].total)
            for doc in {a.gold.doc for a in anchors}}
    total = Tally()
    for t in per_doc.values():
        total.add(t)
    seg_total = sum(segs.values(), PRF(0, 0, 0))
    seg_recall = sum(seg_gold.values(), Rate(0, 0))
    return {
        "system": run.name,
        "title": run.title,
        "gold_items": len(gold_items),
        "located": len(anchors),
        "problems": problems,
        "segmentation": _seg_dict(seg_total, seg_recall),
        "fields": {k: v.as_dict() for k, v in sorted(total.prf.items())},
        "checks": {k: v.as_dict() for k, v in sorted(total.rates.items())},
        "status_confusion": [{"gold": g, "pred": p, "n": n} for (g, p), n in sorted(total.confusion.items())],
        "per_doc": {
            doc: {
                "gold_items": seg_gold[doc].total,
                "segmentation": _seg_dict(segs[doc], seg_gold[doc]),
                "fields": {k: v.as_dict() for k, v in sorted(per_doc[doc].prf.items())},
                "checks": {k: v.as_dict() for k, v in sorted(per_doc[doc].rates.items())},
            }
            for doc in sorted(segs)
        },
        "validity": validity(run),
        "grounding": grounding(run, [assigned[k] for k in sorted(assigned)]),
        "per_item": per_item,
        "truncation": truncation(run),
        "coverage": {d: {"figures": r.coverage.figures, "in_items": r.coverage.figures_in_items,
                         "rate": round(r.coverage.figures_in_items / r.coverage.figures, 4) if r.coverage.figures else None}
                     for d, r in sorted(run.records.items()) if r.coverage is not None},
        "speed": speed(run),
        "notes": list(run.notes),
    }


def _item_summary(item: TaskItem, a: Anchor, t: Tally, shared: int) -> dict:
    """What a reader needs to see why one gold item scored as it did."""
    return {
        "shared_with": shared - 1,
        "units_tp": f"{t.prf['units'].tp}/{t.prf['units'].gold} (pred {t.prf['units'].pred})",
        "indicators_tp": f"{t.prf['indicators'].tp}/{t.prf['indicators'].gold} (pred {t.prf['indicators'].pred})",
        "indicator_kinds_ok": t.prf["indicator_kind"].tp,
        "status": {"gold": [p.status for p in a.gold.progress],
                   "pred": [p.status for p in item.progress]},
    }


def _seg_dict(prf: PRF, recall: Rate) -> dict:
    """Precision over judged predicted items, recall over gold items (the two differ on merges)."""
    p = prf.precision
    r = recall.value
    f1 = None if p is None or r is None else (2 * p * r / (p + r) if p + r else 0.0)
    return {"precision": rnd(p), "recall": rnd(r), "f1": rnd(f1), "tp_items": prf.tp,
            "judged_items": prf.pred, "gold_items": recall.total, "gold_found": recall.hits}


def _judged_items(run: SystemRun, anchors: list[Anchor], assigned_ids: set[str]) -> dict[str, set[str]]:
    """Predicted items the gold can judge: assigned to a gold item, covering one's start, or starting inside one's quote."""
    out: dict[str, set[str]] = defaultdict(set)
    by_doc: dict[str, list[Anchor]] = defaultdict(list)
    for a in anchors:
        by_doc[a.gold.doc].append(a)
    for doc, doc_anchors in by_doc.items():
        rec = run.records.get(doc)
        for item in (rec.items if rec else []):
            s = _start(item)
            if item.item_id in assigned_ids or any(
                _covers(item, a.start) or a.start + START_SLACK < s < a.end for a in doc_anchors
            ):
                out[doc].add(item.item_id)
    return out


def validity(run: SystemRun) -> dict:
    """Schema-valid share: model outputs when a model ran, else the records themselves re-validated."""
    if run.calls:
        r = Rate(sum(c.valid for c in run.calls), len(run.calls))
        first = Rate(sum(c.valid and not c.retries for c in run.calls), len(run.calls))
        return {**r.as_dict(), "first_try": first.as_dict()["rate"], "basis": "model outputs (after one retry)"}
    ok = 0
    for rec in run.records.values():
        try:
            DocumentRecord.model_validate_json(rec.model_dump_json())
            ok += 1
        except ValidationError:
            pass
    return {**Rate(ok, len(run.records)).as_dict(), "basis": "records"}


def grounding(run: SystemRun, items: list[TaskItem]) -> dict:
    """Spans that equal the original text at their offsets, and figures whose number is in their evidence."""
    spans = Rate(0, 0)
    values = Rate(0, 0)
    for item in items:
        rec_file = _file_of(run, item)
        text = run.texts.get(rec_file, "")
        for s in iter_spans(item):
            spans += Rate(int(text[s.start:s.end] == s.text), 1)
        for ind in _indicators(item):
            shown = norm(ind.value_text).replace(",", "")
            values += Rate(int(bool(shown) and shown in norm(ind.evidence.text).replace(",", "")), 1)
    return {"spans": spans.as_dict(), "values": values.as_dict(), "rate": spans.as_dict()["rate"]}


def _file_of(run: SystemRun, item: TaskItem) -> str:
    doc = item.item_id.split("#", 1)[0]
    rec = run.records.get(doc)
    return rec.source_file if rec else ""


def truncation(run: SystemRun) -> dict:
    if not run.calls:
        return {"rate": None, "hits": 0, "total": 0, "basis": "no generation"}
    return {**Rate(sum(c.truncated for c in run.calls), len(run.calls)).as_dict(), "basis": "model outputs"}


def speed(run: SystemRun) -> dict:
    """Seconds per item (median of calls when a model ran) and decode tokens per second."""
    out: dict = {"seconds_total": rnd(run.seconds, 3), "items": run.items,
                 "seconds_per_item": rnd(run.seconds / run.items, 5) if run.items else None}
    if run.calls:
        secs = [c.seconds for c in run.calls]
        toks = sum(c.completion_tokens for c in run.calls)
        out.update({
            "calls": len(run.calls),
            "seconds_per_item_median": rnd(statistics.median(secs), 3),
            "seconds_per_item_max": rnd(max(secs), 3),
            "prompt_tokens_mean": rnd(statistics.fmean(c.prompt_tokens for c in run.calls), 1),
            "completion_tokens_total": toks,
            "tokens_per_second": rnd(toks / sum(secs), 2) if sum(secs) else None,
            "tokens_per_second_median": rnd(statistics.median(
                c.completion_tokens / c.seconds for c in run.calls if c.seconds > 0), 2)
            if any(c.seconds > 0 for c in run.calls) else None,
            "retries": sum(c.retries for c in run.calls),
        })
    return out


def rules_run(files: list[Path]) -> tuple[SystemRun, dict]:
    """The rules-only system: structure_file, then figures filled by rules alone (no statuses).

    Returns the run and the Structured results by file name, which a model pass reuses.
    """
    t0 = time.perf_counter()
    structured = {}
    records: dict[str, DocumentRecord] = {}
    n_items = 0
    report = ApplyReport()
    for f in files:
        st = structure_file(f)
        structured[Path(f).name] = st
        for rec in st.records:
            items = [apply_labels(st.clean, build_job(st.clean, it), None, report) for it in rec.items]
            n_items += len(items)
            records[rec.doc_id] = rec.model_copy(update={"items": items})
    seconds = time.perf_counter() - t0
    texts = {name: st.source.text for name, st in structured.items()}
    run = SystemRun(
        name="rules", title="rules only 仅规则", records=records, texts=texts, seconds=seconds, items=n_items,
        notes=("structure_file, then labeling.apply_labels with no model labels: what rules alone fill "
               "(figures, marked kinds, decisive statuses), the values llmstruct keeps when the model fails",),
    )
    return run, structured


__all__ = ["Anchor", "CallStat", "SystemRun", "anchor_gold", "assign", "rules_run", "score_system"]
