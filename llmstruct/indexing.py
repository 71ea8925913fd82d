"""Structure documents and index them into the store: the one way files get into a corpus,
shared by the CLI, uploads, the app's first start and the eval."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmstruct.errors import IngestError, LlmstructError
from llmstruct.ingest.paths import expand_paths
from llmstruct.ingest.source import SUPPORTED_SUFFIXES, SourceText, read_source
from llmstruct.schema import DocumentRecord
from llmstruct.search.lexical import lexical_index
from llmstruct.store.chunks import INDEX_VERSION
from llmstruct.store.store import IndexReport, IndexResult, Store
from llmstruct.structure.pipeline import structure_source


def index_paths(store: Store, paths: Iterable[Path], sources_dir: Path | None = None,
                progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """Index documents (structured by rules first) and/or ``<doc_id>.json`` record files.

    A document whose file (same name, same sha256) is already in the store is not
    structured again: the stored records are reused, whether they came from rules or a
    model pass.
    """
    t0 = time.perf_counter()
    report = IndexReport()
    docs, jsons = _expand(list(paths))
    if not docs and not jsons:
        report.errors.append("no input files (documents or <doc_id>.json records)")
        return report
    by_source: dict[str, list[dict[str, Any]]] = {}
    for _, m in (store.document_rows() if docs else []):
        by_source.setdefault(m.get("source_file", ""), []).append(m)
    for f in docs:
        try:
            src: SourceText = read_source(f)
        except IngestError as exc:
            report.errors.append(str(exc))
            continue
        have = by_source.get(Path(src.path).name, [])
        if have and all(m.get("source_sha256") == src.sha256 and m.get("index_version") == INDEX_VERSION
                        for m in have):
            report.results.extend(IndexResult(doc_id=m["doc_id"], source_file=m.get("source_file", ""),
                                              action="unchanged", items=m.get("items", 0),
                                              chunks=m.get("chunks", 0)) for m in have)
            continue
        try:
            structured = structure_source(src)
        except LlmstructError as exc:
            report.errors.append(str(exc))
            continue
        except Exception as exc:  # one bad file must not stop the batch
            report.errors.append(f"{f}: cannot structure: {type(exc).__name__}: {exc}")
            continue
        report.merge(store.index_records(structured, progress=progress))
    records: list[DocumentRecord] = []
    for f in jsons:
        try:
            records.append(DocumentRecord.model_validate_json(f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValidationError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report.errors.append(f"{f}: not a DocumentRecord JSON: {first}")
    if records:
        report.merge(store.index_records(records, sources_dir=sources_dir, progress=progress))
    if any(r.action != "unchanged" for r in report.results):
        lexical_index(store)  # the writer builds the BM25 side index once; searching processes only load it
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _expand(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(documents, record JSON files) named directly or found under folders, sorted."""
    files = expand_paths(paths, SUPPORTED_SUFFIXES | {".json"})
    return [f for f in files if f.suffix.lower() != ".json"], [f for f in files if f.suffix.lower() == ".json"]
