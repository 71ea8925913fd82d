"""Input files named directly or found under folders."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from llmstruct.ingest.source import SUPPORTED_SUFFIXES

# Files that travel with reports in a folder but are not reports: a corpus's own notes.
NOT_REPORTS = frozenset({"readme", "sources", "license", "licence", "changelog", "notice", "authors", "contributing"})


def is_report_candidate(f: Path, suffixes: Iterable[str] = SUPPORTED_SUFFIXES) -> bool:
    """Whether a file found in a folder is taken as input: a supported type, not hidden, and
    not one of the folder's own notes (README, SOURCES, LICENSE ...)."""
    return (f.is_file() and f.suffix.lower() in set(suffixes) and not f.name.startswith(".")
            and f.stem.lower() not in NOT_REPORTS)


def expand_paths(paths: list[Path], suffixes: Iterable[str] = SUPPORTED_SUFFIXES) -> list[Path]:
    """Files named directly (always, so a bad one gets its error), plus the report
    candidates found under named folders, sorted."""
    wanted = set(suffixes)
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if is_report_candidate(f, wanted)))
        else:
            out.append(p)
    return out
