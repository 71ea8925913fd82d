"""Chunks of a record: task and progress spans of the original text, split at sentence ends,
with the filterable metadata of their item and document."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmstruct.errors import StoreError
from llmstruct.schema import DocumentRecord, TaskItem, iter_spans
from llmstruct.text.tokens import analyze
from llmstruct.vocab import VOCAB

STORE_VERSION = 1


# Bump when chunking or the searchable text changes: stored documents are then re-indexed.
INDEX_VERSION = "chunks-4"

MAX_CHUNK_CHARS = 320

_STATUS_ORDER = VOCAB.status_severity




@dataclass(frozen=True)
class Chunk:
    """One passage to store: ``text == original[start:end]``; ``search_text`` is what is
    embedded and tokenised (a short context header plus the clean, Simplified text)."""

    chunk_id: str
    doc_id: str
    item_id: str
    kind: Literal["task", "progress"]
    start: int
    end: int
    text: str
    search_text: str
    metadata: dict[str, Any] = field(default_factory=dict)


_SENTENCE_END = re.compile(r"[。！？；!?;]+[”’）)]*|\n[ \t\u3000]*\n")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_range(text: str, start: int, end: int, max_chars: int = MAX_CHUNK_CHARS) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into pieces of at most ``max_chars`` at sentence ends.

    Single line breaks are kept inside a piece: in these reports they mostly wrap table
    cells. A sentence longer than ``max_chars`` is cut after its last comma that fits.
    """
    start, end = _trim(text, start, end)
    if end - start <= max_chars:
        return [(start, end)] if end > start else []
    bounds = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]
    if not bounds or bounds[-1] != end:
        bounds.append(end)
    pieces: list[tuple[int, int]] = []
    cur = start
    last = start
    for b in bounds:
        if b - cur <= max_chars:
            last = b
            continue
        if last > cur:
            pieces.append((cur, last))
            cur = last
        while b - cur > max_chars:
            window = text[cur : cur + max_chars]
            comma = max(window.rfind("，"), window.rfind(","), window.rfind("、"))
            cut = cur + (comma + 1 if comma >= max_chars // 3 else max_chars)
            pieces.append((cur, cut))
            cur = cut
        last = b
    if last > cur:
        pieces.append((cur, last))
    out: list[tuple[int, int]] = []
    for a, b in pieces:
        a, b = _trim(text, a, b)
        if b <= a:
            continue
        if out and (b - a) < 40 and (b - out[-1][0]) <= max_chars * 5 // 4:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def item_status(item: TaskItem) -> str | None:
    """The item's status, or the most adverse status of its progress entries."""
    found = [p.status for p in item.progress if p.status]
    if item.status:
        found.append(item.status)
    if not found:
        return None
    return min(found, key=_STATUS_ORDER.index)


def _region_names(rec: DocumentRecord) -> list[str]:
    r = rec.region
    return [n for n in (r.province, r.city, r.county, r.town) if n]


def _place(rec: DocumentRecord) -> str:
    r = rec.region
    return r.town or r.county or r.city or r.province or ""


def _short(text: str, limit: int = 24) -> str:
    first = re.split(r"[。；，,;]", text, maxsplit=1)[0]
    return first[:limit]


def _put(meta: dict[str, Any], key: str, value: Any) -> None:
    """Chroma metadata takes no None and no empty lists: leave such keys out."""
    if value is None or value == "" or value == []:
        return
    if isinstance(value, list):
        value = list(dict.fromkeys(value))
    meta[key] = value


def doc_metadata(rec: DocumentRecord) -> dict[str, Any]:
    """Fields shared by a document's chunks, items and document entry."""
    meta: dict[str, Any] = {}
    _put(meta, "doc_id", rec.doc_id)
    _put(meta, "source_file", rec.source_file)
    _put(meta, "source_stem", Path(rec.source_file).stem)
    _put(meta, "doc_type", rec.doc_type)
    _put(meta, "title", rec.title.name if rec.title else "")
    _put(meta, "year", rec.period or "")
    _put(meta, "region", _region_names(rec))
    for level in ("province", "city", "county", "town"):
        _put(meta, level, getattr(rec.region, level) or "")
    return meta


def item_metadata(rec: DocumentRecord, item: TaskItem) -> dict[str, Any]:
    """Structured fields of one item as filterable Chroma metadata."""
    meta = doc_metadata(rec)
    _put(meta, "item_id", item.item_id)
    if item.seq_no is not None:
        meta["seq_no"] = item.seq_no
    _put(meta, "item_kind", item.kind)
    _put(meta, "heading", item.heading)
    _put(meta, "units", [u.canonical for u in item.units])
    for role in ("lead", "responsible", "cooperating", "reporting"):
        _put(meta, f"units_{role}", [u.canonical for u in item.units if u.role == role])
    _put(meta, "leaders", [ld.name for ld in item.leaders])
    _put(meta, "status", item_status(item))
    statuses = [p.status for p in item.progress if p.status] + ([item.status] if item.status else [])
    _put(meta, "statuses", statuses)
    first = item.task.spans[0]
    meta["start"], meta["end"] = first.start, first.end
    return meta




def _responsibility(item: TaskItem) -> str:
    """Leaders and units of a task as one clause; the task span itself does not hold them."""
    parts = []
    if item.leaders:
        parts.append("责任领导：" + "、".join(dict.fromkeys(ld.name for ld in item.leaders)))
    for role in VOCAB.words("index_roles"):
        label = VOCAB.role(role)["unit_label"]
        names = list(dict.fromkeys(u.canonical for u in item.units if u.role == role))
        if names:
            parts.append(f"{label}：" + "、".join(names))
    return f"（{'；'.join(parts)}）" if parts else ""


def search_text(original_slice: str) -> str:
    """Clean, Simplified form of a slice of original text (for embedding and BM25)."""
    return analyze(original_slice)


def build_chunks(rec: DocumentRecord, original: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Chunks of one record: each task span and each progress span, split when long.

    Each chunk's searchable text starts with a short header (place, year, kind of report;
    for progress also the task's first clause and the reporting unit), because a progress
    paragraph rarely repeats what task it reports on or where.
    """
    place = _place(rec)
    year = f"{rec.period}年" if rec.period else ""
    label = VOCAB.doc_type_label(rec.doc_type, index=True)
    chunks: list[Chunk] = []
    for item in rec.items:
        base = item_metadata(rec, item)
        base.pop("start", None)
        base.pop("end", None)
        title = _short(item.task.text)
        tail = _responsibility(item)
        pieces: list[tuple[str, str, int, int, dict[str, Any]]] = []
        for k, span in enumerate(item.task.spans):
            for j, (a, b) in enumerate(split_range(original, span.start, span.end, max_chars)):
                pieces.append(("task", f"t{k}.{j}", a, b, {}))
        for p_no, prog in enumerate(item.progress):
            extra: dict[str, Any] = {}
            unit = prog.reporting_unit.name if prog.reporting_unit else ""
            _put(extra, "reporting_unit", unit)
            _put(extra, "progress_status", prog.status)
            for k, span in enumerate(prog.text.spans):
                for j, (a, b) in enumerate(split_range(original, span.start, span.end, max_chars)):
                    pieces.append(("progress", f"p{p_no}.{k}.{j}", a, b, extra))
        for kind, suffix, a, b, extra in pieces:
            body = search_text(original[a:b])
            if len(body) < 2:
                continue
            if kind == "task":
                header = f"{place}{year}{label}："
                body += tail
            else:
                unit = extra.get("reporting_unit", "")
                header = f"{place}{year}{label}·{title}{'·' + unit if unit else ''}："
            meta = dict(base)
            meta.update(extra)
            meta.update(kind=kind, start=a, end=b, index_version=INDEX_VERSION)
            chunks.append(Chunk(chunk_id=f"{item.item_id}/{suffix}", doc_id=rec.doc_id, item_id=item.item_id,
                                kind=kind, start=a, end=b, text=original[a:b], search_text=header + body,
                                metadata=meta))
    return chunks


def content_hash(rec: DocumentRecord, embedder_name: str) -> str:
    """Same record, same chunking, same embedder: same hash, nothing to do."""
    payload = json.dumps([STORE_VERSION, INDEX_VERSION, MAX_CHUNK_CHARS, embedder_name,
                          rec.model_dump(mode="json")], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def check_spans(rec: DocumentRecord, original: str) -> None:
    """Every span of the record must be the slice it claims, or offsets would lie."""
    for span in iter_spans(rec):
        if original[span.start : span.end] != span.text:
            raise StoreError(f"{rec.doc_id}: span {span.start}-{span.end} does not match the source text "
                             f"of {rec.source_file}")
