"""The rules pass over one source: layout, segmenting, rules, metadata, into DocumentRecords."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from llmstruct import __version__
from llmstruct.atomic import write_json_atomic
from llmstruct.errors import IngestError
from llmstruct.ingest.source import SourceText, read_source
from llmstruct.schema import DocumentRecord, Provenance
from llmstruct.structure.coverage import coverage_warning, record_coverage
from llmstruct.structure.labeling import rules_only
from llmstruct.structure.layout import split_reports, unflatten
from llmstruct.structure.metadata import extract_metadata
from llmstruct.structure.rules import build_item
from llmstruct.structure.segmenting import detect_layout, numbering_restarts, segment
from llmstruct.text.normalize import NormText, normalize

_DOC_TYPES = {"table": "progress_report", "work_report": "work_report"}

# Task items per report. The largest real bulletin seen has under 200; a file over this is a
# generated or concatenated one, and every later stage (model pass, index) grows with it.
MAX_ITEMS = 5000


@dataclass(frozen=True)
class Structured:
    """The records of one file plus what later stages need (source and clean view)."""

    source: SourceText
    clean: NormText
    records: list[DocumentRecord]


def structure_source(source: SourceText) -> Structured:
    """Rules-only structuring of one decoded source: split, segment, fill, validate."""
    nt, report = normalize(source.text)
    flat = unflatten(nt)
    slices = [sl.moved_to(nt, flat) for sl in split_reports(nt)]
    nt = flat
    stem = Path(source.path).stem
    records = []
    warnings = list(source.warnings)
    if report.traditional:
        warnings.append("Traditional script: clean text mapped to Simplified, spans point to the original")
    if report.pinyin_dropped:
        warnings.append(f"pinyin annotations removed from clean text ({report.pinyin_dropped} characters)")
    if report.mojibake_dropped:
        warnings.append(f"{report.mojibake_dropped} '??' mojibake fragments in the source; text around them may be garbled")
    for k, sl in enumerate(slices, start=1):
        doc_id = doc_id_for(stem, k if len(slices) > 1 else None)
        layout = detect_layout(nt, sl.start, sl.end)
        raw_items = segment(nt, sl.start, sl.end, layout)
        if len(raw_items) > MAX_ITEMS:
            raise IngestError(source.path, f"too many task items: {len(raw_items):,} in report {k}, over llmstruct's "
                                           f"limit of {MAX_ITEMS:,} per report; split the file")
        items = []
        paragraph_no = 0
        used: set[str] = set()
        for raw in raw_items:
            if raw.seq_no is not None:
                item_id = f"{doc_id}#{raw.seq_no}"
                n = 1
                while item_id in used:  # （一） numbering starts again in each 一、 section
                    n += 1
                    item_id = f"{doc_id}#{raw.seq_no}-{n}"
                used.add(item_id)
            else:
                paragraph_no += 1
                item_id = f"{doc_id}#p{paragraph_no:03d}"
            items.append(rules_only(nt, build_item(nt, raw, item_id)))
        if layout in ("numbered", "cells"):
            doc_type = "progress_report" if any(i.progress for i in items) else "task_list"
        else:
            doc_type = _DOC_TYPES[layout]
        meta = extract_metadata(nt, sl.start, sl.end, sl.title_line)
        rec_warnings = list(warnings)
        if not items:
            rec_warnings.append("no task items found")
        restarts = numbering_restarts(nt, sl.start, sl.end) if layout == "numbered" else 0
        if restarts:
            rec_warnings.append(f"item numbering starts again at 1 {restarts} time(s) after item {len(items)}: the "
                                "file may hold the list more than once; only the first run became items")
        records.append(
            DocumentRecord(
                doc_id=doc_id,
                source_file=Path(source.path).name,
                source_sha256=source.sha256,
                report_index=k,
                source_range=nt.span(sl.start, sl.end),
                doc_type=doc_type,
                title=meta.title,
                issuing_body=meta.issuing_body,
                doc_number=meta.doc_number,
                dates=meta.dates,
                meeting=meta.meeting,
                speaker=meta.speaker,
                speaker_title=meta.speaker_title,
                region=meta.region,
                period=meta.period,
                items=items,
                warnings=rec_warnings,
                provenance=Provenance(method="rules", llmstruct_version=__version__),
            )
        )
    with_coverage = []
    for rec in records:
        cov = record_coverage(rec, nt)
        note = coverage_warning(cov)
        with_coverage.append(rec.model_copy(update={"coverage": cov, "warnings": rec.warnings + ([note] if note else [])}))
    return Structured(source=source, clean=nt, records=with_coverage)


_UNSAFE_IN_ID = re.compile(r"[/\\\x00-\x1f]")


def doc_id_for(stem: str, report_no: int | None = None) -> str:
    """The file stem as an id (``x`` or ``x-03`` for the third report of a file), made safe to
    name files with: no separators or control characters, no leading dot, at most 76
    characters of the stem (``..txt`` gives ``_``)."""
    base = _UNSAFE_IN_ID.sub("_", stem).lstrip(". ")[:76] or "_"
    return base if report_no is None else f"{base}-{report_no:02d}"


def structure_file(path: str | Path, max_mb: float | None = None) -> Structured:
    """Read and structure one file (``max_mb``: the file size limit, default 50 MB)."""
    return structure_source(read_source(path, max_mb))


def write_records(records: list[DocumentRecord], out_dir: Path) -> list[Path]:
    written = []
    for rec in records:
        target = out_dir / f"{rec.doc_id}.json"
        write_json_atomic(target, rec.model_dump(mode="json"))
        written.append(target)
    return written
