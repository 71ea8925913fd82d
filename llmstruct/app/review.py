"""``llmstruct review OUT_DIR``: one self-contained HTML page per record for checking by eye.

The page shows the original text of the report with every extracted field highlighted at
its span, coloured by type, and the record beside it. Clicking a highlight jumps to its
field; clicking a field jumps to its text. Spans are taken from the record and checked
against the source (its sha256 must match), so what is highlighted is exactly what the
record claims. Everything from the documents is escaped; the page loads nothing.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from pydantic import ValidationError

from llmstruct.atomic import write_text_atomic
from llmstruct.errors import IngestError
from llmstruct.ingest.source import read_source
from llmstruct.schema import (
    DocumentRecord,
    Indicator,
    IndicatorKind,
    Span,
    Status,
    TaskItem,
    UnitRole,
)
from llmstruct.vocab import VOCAB

# type -> (label shown to staff, background colour); blocks are tinted, fields are marked.
TYPES: dict[str, tuple[str, str]] = {
    "title": ("标题/文号/发文机关 title", "#c5cae9"),
    "date": ("日期 date", "#b2ebf2"),
    "task": ("任务 task", "#eef3fb"),
    "progress": ("进展 progress", "#eef8ec"),
    **{f"unit-{r}": (f"{VOCAB.role(r)['unit_label']} {r}", colour)
       for r, colour in zip(get_args(UnitRole), ("#ffcc80", "#ffe082", "#e6ee9c", "#d7ccc8"), strict=True)},
    "leader": ("责任领导 leader", "#e1bee7"),
    **{f"ind-{k}": (f"指标·{VOCAB.kind_label(k)} {k}", colour)
       for k, colour in zip(get_args(IndicatorKind), ("#90caf9", "#a5d6a7", "#80cbc4", "#cfd8dc"), strict=True)},
    "status": ("状态依据 status cue", "#ef9a9a"),
    "assessment": ("进度判断 assessment", "#ffab91"),
    "deadline": ("时限 deadline", "#f8bbd0"),
}
BLOCKS = {"task", "progress"}
STATUS_ZH = {s: VOCAB.status_label(s, review=True) for s in get_args(Status)}
QUALIFIER_ZH = {"exact": "", "approx": "左右", "at_least": "以上", "at_most": "以内"}


@dataclass(frozen=True)
class Mark:
    """One highlighted field: its id on the page, type, the text of its row, and its spans."""

    id: int
    type: str
    label: str
    spans: tuple[Span, ...]

    @property
    def size(self) -> int:
        return sum(s.end - s.start for s in self.spans)


@dataclass
class Marks:
    items: list[Mark] = field(default_factory=list)

    def add(self, type_: str, label: str, spans) -> int:
        spans = tuple(s for s in spans if s is not None)
        m = Mark(len(self.items) + 1, type_, label, spans)
        self.items.append(m)
        return m.id


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:g}"


def _indicator_label(ind: Indicator) -> str:
    change = ""
    if ind.change is not None:
        change = {"up": " ↑", "down": " ↓", "flat": " →"}[ind.change.direction]
    q = QUALIFIER_ZH[ind.qualifier]
    return f"{ind.name or '（无名）'}：{ind.value_text or _num(ind.value)}{ind.unit}{q}{change} · {ind.kind}"


def collect(rec: DocumentRecord) -> tuple[list[Mark], str, list[str]]:
    """Every span of the record as marks, plus the record panel's HTML (rows refer to marks)."""
    marks = Marks()
    rows: list[str] = []

    def row(type_: str, label: str, spans, extra: str = "") -> str:
        mid = marks.add(type_, label, spans)
        return (f'<div class="f t-{type_}" id="f-{mid}" data-m="{mid}"><b>{_esc(TYPES[type_][0].split(" ")[0])}</b> '
                f"{_esc(label)}{extra}</div>")

    head = []
    for what, named in (("标题", rec.title), ("发文机关", rec.issuing_body), ("文号", rec.doc_number),
                        ("会议", rec.meeting), ("报告人", rec.speaker)):
        if named is not None:
            head.append(row("title", f"{what}：{named.name}", [named.span]))
    for d in rec.dates:
        head.append(row("date", f"{d.kind}：{d.value}", [d.span]))
    region = "".join(x for x in (rec.region.province, rec.region.city, rec.region.county, rec.region.town) if x)
    rows.append(f'<div class="doc"><h2>{_esc(rec.doc_id)}</h2><div class="meta">{_esc(rec.doc_type)} · '
                f'{_esc(region or "region ?")} · period {_esc(rec.period or "?")} · {len(rec.items)} items · '
                f'{_esc(rec.provenance.method)} {_esc(rec.provenance.model_id or "")}</div>{"".join(head)}')
    for w in rec.warnings:
        rows.append(f'<div class="warn">⚠ {_esc(w)}</div>')
    rows.append("</div>")
    for item in rec.items:
        rows.append(_item_rows(item, row))
    return marks.items, "".join(rows), list(rec.warnings)


def _item_rows(item: TaskItem, row) -> str:
    title = f"{item.item_id} · {item.kind}" + (f" · {STATUS_ZH.get(item.status, item.status)}" if item.status else "")
    path = " › ".join(item.section_path)
    out = [f'<div class="item"><div class="ih">{_esc(title)}</div>']
    if path:
        out.append(f'<div class="path">{_esc(path)}</div>')
    out.append(row("task", item.task.text[:80] + ("…" if len(item.task.text) > 80 else ""), item.task.spans))
    for ld in item.leaders:
        out.append(row("leader", ld.name, [ld.span]))
    for u in item.units:
        canon = f"（{u.canonical}）" if u.canonical != u.name else ""
        out.append(row(f"unit-{u.role}", u.name + canon, u.spans))
    for ind in item.targets:
        out.append(row(f"ind-{ind.kind}", _indicator_label(ind), [ind.evidence]))
    for d in item.deadlines:
        out.append(row("deadline", d.text, [d.span]))
    for k, p in enumerate(item.progress, start=1):
        who = p.reporting_unit.name if p.reporting_unit else ""
        out.append(f'<div class="pg">进展 {k}{_esc(" · " + who) if who else ""}'
                   f'{_esc(" · " + STATUS_ZH.get(p.status, p.status)) if p.status else ""}</div>')
        if p.reporting_unit is not None:
            out.append(row("unit-reporting", p.reporting_unit.name, [p.reporting_unit.span]))
        out.append(row("progress", p.text.text[:80] + ("…" if len(p.text.text) > 80 else ""), p.text.spans))
        if p.status_cue is not None:
            out.append(row("status", f"{p.status}：{p.status_cue.text}", [p.status_cue]))
        a = p.assessment
        if a is not None:  # the basis: the figures compared, and the period words
            spans = [x for x in (a.actual, a.target, a.period) if x is not None]
            out.append(row("assessment", f"{STATUS_ZH.get(a.status, a.status)}：{a.explanation}", spans))
        for ind in p.indicators:
            out.append(row(f"ind-{ind.kind}", _indicator_label(ind), [ind.evidence]))
    out.append("</div>")
    return "".join(out)


def render_text(original: str, lo: int, hi: int, marks: list[Mark]) -> str:
    """The original text of ``[lo, hi)`` with each mark's spans wrapped, innermost field first."""
    cuts = {lo, hi}
    for m in marks:
        for s in m.spans:
            if s.end > lo and s.start < hi:
                cuts.add(max(lo, s.start))
                cuts.add(min(hi, s.end))
    bounds = sorted(cuts)
    starts: dict[int, list[Mark]] = {}
    for m in marks:
        for s in m.spans:
            starts.setdefault(max(lo, s.start), []).append(m)
    active: list[tuple[int, Mark]] = []  # (end, mark)
    out = []
    for a, b in zip(bounds, bounds[1:]):
        active = [(e, m) for e, m in active if e > a]
        for m in starts.get(a, []):
            for s in m.spans:
                if max(lo, s.start) == a and s.end > a:
                    active.append((min(hi, s.end), m))
        chunk = _esc(original[a:b])
        if not active:
            out.append(chunk)
            continue
        covering = sorted({m.id: m for _, m in active}.values(), key=lambda m: (m.type in BLOCKS, m.size))
        inner = covering[0]
        block = next((m for m in covering if m.type in BLOCKS), None)
        cls = ["seg", f"t-{inner.type}"]
        if block is not None and block is not inner:
            cls.append(f"in-{block.type}")
        if inner.type not in BLOCKS:
            cls.append("fld")
        ids = " ".join(str(m.id) for m in covering)
        out.append(f'<span class="{" ".join(cls)}" data-m="{ids}">{chunk}</span>')
    return "".join(out)


_CSS = """
*{box-sizing:border-box}body{margin:0;font-family:system-ui,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;color:#222}
header{padding:8px 16px;border-bottom:1px solid #ddd;background:#fafafa}header h1{font-size:17px;margin:0 0 4px}
.legend span{display:inline-block;margin:2px 10px 2px 0;font-size:12px;padding:0 4px;border-radius:3px}
main{display:flex;height:calc(100vh - 92px)}#text{flex:3;overflow:auto;padding:16px;white-space:pre-wrap;line-height:1.9;font-size:15px}
#rec{flex:2;overflow:auto;padding:12px;border-left:1px solid #ddd;font-size:13px;background:#fcfcfc}
.seg{cursor:pointer}.fld{border-bottom:2px solid rgba(0,0,0,.35);border-radius:2px}
.item,.doc{border:1px solid #e3e3e3;border-radius:6px;padding:6px 8px;margin:0 0 10px;background:#fff}
.ih{font-weight:600;margin-bottom:2px}.path{color:#666;font-size:12px;margin-bottom:4px}.pg{margin-top:6px;color:#2e7d32;font-weight:600}
.f{padding:2px 6px;margin:2px 0;border-radius:3px;cursor:pointer}.f b{font-weight:600;margin-right:4px}
.meta{color:#555;font-size:12px;margin-bottom:4px}.doc h2{font-size:15px;margin:0 0 2px}.warn{color:#b26a00;font-size:12px}
.flash{outline:3px solid #d32f2f;outline-offset:1px}
"""

_JS = """
(function(){
function flash(els){els.forEach(function(e){e.classList.add('flash')});setTimeout(function(){els.forEach(function(e){e.classList.remove('flash')})},1600)}
document.addEventListener('click',function(ev){
  var seg=ev.target.closest('.seg');
  if(seg){var id=seg.getAttribute('data-m').split(' ')[0];var f=document.getElementById('f-'+id);
    if(f){f.scrollIntoView({block:'center'});flash([f])}return}
  var f2=ev.target.closest('.f');
  if(f2){var id2=f2.getAttribute('data-m');var segs=Array.prototype.slice.call(document.querySelectorAll('.seg[data-m~="'+id2+'"]'));
    if(segs.length){segs[0].scrollIntoView({block:'center'});flash(segs)}}
});
})();
"""


def render_review(rec: DocumentRecord, original: str) -> str:
    """The review page of one record, given the original text of its source file."""
    marks, panel, _ = collect(rec)
    lo, hi = rec.source_range.start, rec.source_range.end
    type_css = "".join(f".t-{t}{{background:{c}}}" for t, (_, c) in TYPES.items())
    block_css = "".join(f".in-{t}{{background:{TYPES[t][1]}}}" for t in BLOCKS)
    counts = Counter(m.type for m in marks)
    legend = "".join(f'<span class="t-{t}">{_esc(label)} {counts.get(t, 0)}</span>' for t, (label, _) in TYPES.items())
    title = rec.title.name if rec.title else rec.doc_id
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{_esc(rec.doc_id)} 审阅</title>'
        f"<style>{_CSS}{block_css}{type_css}</style></head><body>"
        f"<header><h1>{_esc(title)} <small>{_esc(rec.source_file)} [{lo}, {hi})</small></h1>"
        f'<div class="legend">{legend}</div></header>'
        f'<main><div id="text">{render_text(original, lo, hi, marks)}</div><div id="rec">{panel}</div></main>'
        f"<script>{_JS}</script></body></html>"
    )


@dataclass(frozen=True)
class ReviewResult:
    written: tuple[Path, ...]
    failures: tuple[str, ...]
    records: int


def _find_source(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    for d in dirs:
        found = sorted(d.rglob(name)) if d.is_dir() else []
        if found:
            return found[0]
    return None


def load_records(out_dir: Path) -> tuple[list[DocumentRecord], list[str]]:
    """Records in ``out_dir/*.json`` (other JSON files are ignored), with a line per unreadable one."""
    recs, failures = [], []
    for p in sorted(Path(out_dir).glob("*.json")):
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            failures.append(f"{p}: not readable JSON ({exc})")
            continue
        if not isinstance(raw, dict) or "doc_id" not in raw or "items" not in raw:
            continue
        try:
            recs.append(DocumentRecord.model_validate(raw))
        except ValidationError as exc:
            failures.append(f"{p}: not a valid DocumentRecord ({exc.error_count()} errors)")
    return recs, failures


def review_dir(out_dir: Path, sources: list[Path]) -> ReviewResult:
    """Write ``out_dir/review/<doc_id>.html`` for every record, and ``index.html`` linking them."""
    out_dir = Path(out_dir)
    recs, failures = load_records(out_dir)
    target = out_dir / "review"
    written: list[Path] = []
    rows = []
    texts: dict[str, tuple[str, str] | str] = {}
    for rec in recs:
        if rec.source_file not in texts:
            path = _find_source(rec.source_file, sources)
            if path is None:
                texts[rec.source_file] = f"source {rec.source_file} not found in {', '.join(map(str, sources))}"
            else:
                try:
                    src = read_source(path)
                    texts[rec.source_file] = (src.text, src.sha256)
                except IngestError as exc:  # one unreadable source costs its own pages only
                    texts[rec.source_file] = exc.reason
        got = texts[rec.source_file]
        if isinstance(got, str):
            failures.append(f"{rec.doc_id}: {got}")
            continue
        text, sha = got
        if sha != rec.source_sha256:
            failures.append(f"{rec.doc_id}: {rec.source_file} changed since it was structured (sha256 differs)")
            continue
        bad = [s for m in collect(rec)[0] for s in m.spans if text[s.start:s.end] != s.text]
        if bad:
            failures.append(f"{rec.doc_id}: {len(bad)} spans do not match the source text")
            continue
        page = target / f"{rec.doc_id}.html"
        write_text_atomic(page, render_review(rec, text))
        written.append(page)
        marks = collect(rec)[0]
        c = Counter(m.type.split("-")[0] for m in marks)
        statuses = sum(1 for i in rec.items for p in i.progress if p.status)
        rows.append(f'<tr><td><a href="{_esc(page.name)}">{_esc(rec.doc_id)}</a></td><td>{_esc(rec.title.name if rec.title else "")}'
                    f"</td><td>{len(rec.items)}</td><td>{c['unit']}</td><td>{c['leader']}</td><td>{c['ind']}</td>"
                    f"<td>{statuses}</td><td>{len(rec.warnings)}</td></tr>")
    if written:
        index = (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>审阅 review</title><style>'
            "body{font-family:system-ui,sans-serif;margin:24px}td,th{border:1px solid #ddd;padding:4px 8px}"
            "table{border-collapse:collapse}</style></head><body><h1>审阅 review</h1><table><tr><th>doc</th><th>标题</th>"
            "<th>items</th><th>units</th><th>leaders</th><th>indicators</th><th>statuses</th><th>warnings</th></tr>"
            + "".join(rows) + "</table></body></html>")
        write_text_atomic(target / "index.html", index)
    return ReviewResult(tuple(written), tuple(failures), len(recs))


__all__ = ["Mark", "ReviewResult", "collect", "load_records", "render_review", "render_text", "review_dir"]
