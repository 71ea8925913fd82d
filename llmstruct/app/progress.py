"""The 进度 view: which tasks are behind and which on track, with the basis of each judgement.

Rows come from the catalog's records (what code assessed, or what the words decided), one
per progress entry, filterable by document, unit, leader, region and status. Each row keeps
the spans of its basis, so the app can open the source with them marked, and the rows
export to CSV and Excel as staff see them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmstruct.answer.catalog import Catalog
from llmstruct.app.exports import write_table
from llmstruct.schema import Span
from llmstruct.vocab import VOCAB

DEFAULT_STATUSES = ("behind", "on_track")


@dataclass(frozen=True)
class ProgressRow:
    """One progress entry of one task, as the 进度 view lists it."""

    doc_id: str
    doc_label: str
    item_id: str
    seq_no: int | None
    task: str
    units: str
    leaders: str
    reporting_unit: str
    status: str
    basis: str  # the explanation: figures, target, period; or the decisive words
    spans: tuple[Span, ...]  # what to mark in the source

    @property
    def label(self) -> str:
        return f"{self.doc_label[:16]} #{self.seq_no if self.seq_no is not None else '-'} {self.task[:24]}"


def progress_rows(catalog: Catalog, doc_id: str | None = None, unit: str | None = None, leader: str | None = None,
                  region: str | None = None, statuses: Sequence[str] = DEFAULT_STATUSES) -> list[ProgressRow]:
    """The progress entries with one of ``statuses``, most adverse first, then in document order."""
    order = VOCAB.status_severity
    rows: list[ProgressRow] = []
    for rec in catalog.records.values():
        info = catalog.docs[rec.doc_id]
        if doc_id and rec.doc_id != doc_id:
            continue
        if region and region not in (info.place or "") and region not in (info.label or ""):
            continue
        for it in rec.items:
            if unit and not any(unit in (u.name, u.canonical) for u in it.units):
                continue
            if leader and not any(leader == ld.name for ld in it.leaders):
                continue
            for p in it.progress:
                if p.status not in statuses:
                    continue
                a = p.assessment
                if a is not None and a.status == p.status:
                    basis, spans = a.explanation, tuple(x for x in (a.actual, a.target, a.period) if x is not None)
                elif p.status_cue is not None:
                    basis, spans = f"原文：{p.status_cue.text}", (p.status_cue,)
                else:
                    basis, spans = "", tuple(p.text.spans[:1])
                rows.append(ProgressRow(
                    rec.doc_id, info.label, it.item_id, it.seq_no, it.task.text,
                    "、".join(u.name for u in it.units), "、".join(ld.name for ld in it.leaders),
                    p.reporting_unit.name if p.reporting_unit else "", p.status or "", basis, spans))
    rows.sort(key=lambda r: order.index(r.status) if r.status in order else len(order))
    return rows


def rows_html(rows: Sequence[ProgressRow], colours: dict[str, tuple[str, str]]) -> str:
    """The rows as a table, statuses in colour (``colours``: status -> (label, colour))."""
    if not rows:
        return "<p>没有符合条件的任务。</p>"
    body = []
    for r in rows:
        label, colour = colours.get(r.status, (r.status, "#57606a"))
        who = f"{r.units}" + (f"（{r.reporting_unit}报送）" if r.reporting_unit else "")
        body.append(
            f"<tr><td>{html.escape(r.doc_label[:20])}</td><td>{r.seq_no if r.seq_no is not None else ''}</td>"
            f"<td>{html.escape(r.task[:80])}</td><td>{html.escape(who)}</td><td>{html.escape(r.leaders)}</td>"
            f"<td><span class='status-tag' style='background:{colour}'>{html.escape(label)}</span></td>"
            f"<td>{html.escape(r.basis)}</td></tr>")
    return ("<table class='progress-table'><thead><tr><th>文件</th><th>序号</th><th>任务</th><th>单位</th>"
            "<th>责任领导</th><th>状态</th><th>依据</th></tr></thead>" f"<tbody>{''.join(body)}</tbody></table>")


def basis_html(row: ProgressRow, catalog: Catalog, context: int = 160) -> str:
    """The source around the basis with each of its spans marked (target, actual, period)."""
    text = catalog.texts.get(row.doc_id)
    if text is None or not row.spans:
        return "<div class='cite-passage'>（原文不可用）</div>"
    spans = sorted((s.start, s.end) for s in row.spans)
    lo, hi = max(0, spans[0][0] - context), min(len(text), max(b for _, b in spans) + context)
    out, pos = [], lo
    for a, b in spans:
        if a < pos:  # overlapping spans: mark the rest of this one only
            a = pos
        if a >= b:
            continue
        out.append(html.escape(text[pos:a]) + f"<mark>{html.escape(text[a:b])}</mark>")
        pos = b
    out.append(html.escape(text[pos:hi]))
    head = (f"<div><b>{html.escape(row.doc_label)} · {html.escape(row.item_id)}</b><br>"
            f"<small>{html.escape(row.basis)}；字符 {', '.join(f'{a}–{b}' for a, b in spans)}</small></div>")
    return f"{head}<div class='cite-passage'>{'…' if lo else ''}{''.join(out)}{'…' if hi < len(text) else ''}</div>"


def export_rows(rows: Sequence[ProgressRow], out_dir: Path, colours: dict[str, tuple[str, str]]) -> list[str]:
    """CSV and Excel of the rows, as the table shows them."""
    header = ["文件", "item_id", "序号", "任务", "单位", "报送单位", "责任领导", "状态", "依据"]
    table = [[r.doc_label, r.item_id, r.seq_no, r.task, r.units, r.reporting_unit, r.leaders,
              colours.get(r.status, (r.status, ""))[0], r.basis] for r in rows]
    return write_table(out_dir / "进度", "进度", header, table)


__all__ = ["ProgressRow", "basis_html", "export_rows", "progress_rows", "rows_html"]
