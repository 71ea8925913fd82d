"""Answers about a document itself (文号, dates, speaker, meeting, issuer, title) from its
record's metadata, each value cited at the span it was read from.

The metadata is read by rules from the header and the signature; the answer names the
document and quotes the span, so staff can check it. Only questions about the document, not
about one of its tasks, are answered here; anything else goes on to retrieval.
"""

from __future__ import annotations

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.planning import Plan
from llmstruct.answer.terms import simplify
from llmstruct.schema import Answer, Citation, DocumentRecord, Span
from llmstruct.vocab import VOCAB

FIELDS = ("doc_number", "speaker", "meeting", "date", "issuer", "title")
_CUES = {f: VOCAB.cue(f"meta_{f}") for f in FIELDS}
_LABELS = {"doc_number": "文号", "speaker": "报告人", "meeting": "会议", "date": "日期", "issuer": "发文机关",
           "title": "标题"}
# the kinds of date a question means when it says 印发/发布/召开 …
_DATE_KINDS = (("召开", ("meeting",)), ("开幕", ("meeting",)), ("发布", ("published", "issued", "signed")),
               ("印发", ("issued", "signed", "published")))


_SPEAKER_WITH_REPORT = VOCAB.cue("meta_speaker_with_report")
_DATE_CONTEXT = VOCAB.cue("meta_date_context")


def asked_field(question: str) -> str | None:
    """Which metadata field the question asks for, if it asks about the document itself."""
    q = simplify(question).replace("工作报告", "报告")  # 政府工作报告 holds 作报告
    for f in FIELDS:
        if f == "speaker" and not _CUES[f].search(q) and "报告" in q and _SPEAKER_WITH_REPORT.search(q):
            return f
        if _CUES[f].search(q) and (f != "date" or _DATE_CONTEXT.search(q)):
            return f
    return None


def _value(rec: DocumentRecord, field: str, question: str) -> tuple[str, Span] | None:
    if field == "doc_number" and rec.doc_number:
        return rec.doc_number.name, rec.doc_number.span
    if field == "speaker" and rec.speaker:
        return f"{rec.speaker_title}{rec.speaker.name}", rec.speaker.span
    if field == "meeting" and rec.meeting:
        return rec.meeting.name, rec.meeting.span
    if field == "issuer" and rec.issuing_body:
        return rec.issuing_body.name, rec.issuing_body.span
    if field == "title" and rec.title:
        return rec.title.name, rec.title.span
    if field == "date" and rec.dates:
        kinds = next((k for word, k in _DATE_KINDS if word in question), ("issued", "signed", "published", "meeting"))
        ranked = sorted(rec.dates, key=lambda d: kinds.index(d.kind) if d.kind in kinds else len(kinds))
        d = ranked[0]
        return f"{d.value}（{d.span.text}）", d.span
    return None


def metadata_answer(question: str, p: Plan, catalog: Catalog) -> Answer | None:
    """The asked metadata of the plan's documents (or the only document), cited; None when
    the question is not about a document's metadata or no document is named."""
    field = asked_field(question)
    if field is None or p.item_no is not None or p.leader or p.unit or p.status:
        return None
    doc_ids = list(p.doc_ids) or (list(catalog.records) if len(catalog.records) == 1 else [])
    if not doc_ids:
        return None
    citations: list[Citation] = []
    parts: list[str] = []
    missing: list[str] = []
    for doc_id in doc_ids:
        rec = catalog.records.get(doc_id)
        if rec is None:
            continue
        label = catalog.docs[doc_id].label
        got = _value(rec, field, question)
        if got is None:
            missing.append(label)
            continue
        value, span = got
        n = len(citations) + 1
        citations.append(Citation(n=n, doc_id=doc_id, source_file=rec.source_file, start=span.start, end=span.end,
                                  quote=span.text))
        parts.append(f"{label}的{_LABELS[field]}是“{value}”[{n}]")
    if not citations:
        return None  # not read from the header: retrieval may still find it in the text
    text = "；".join(parts) + "。"
    if missing:
        text += f"未找到：{'、'.join(missing)}的{_LABELS[field]}。"
    return Answer(question=question, answer=text, refused=False, citations=citations)


__all__ = ["asked_field", "metadata_answer"]
