"""Input files named directly or found under folders."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from llmstruct.ingest.source import SUPPORTED_SUFFIXES

# Files that travel with reports in a folder but are not reports: a corpus's own notes.
NOT_REPORTS = frozenset({"readme", "sources", "notes", "license", "licence", "changelog", "notice", "authors", "contributing"})


def is_report_candidate(f: Path, suffixes: Iterable[str] = SUPPORTED_SUFFIXES) -> bool:
    """Whether a file found in a folder is taken as input: a supported type, not hidden, and
    not one of the folder's own notes (README, SOURCES, LICENSE ...)."""
    return (f.is_file() and f.suffix.lower() in set(suffixes) and not f.name.startswith(".")
            and f.stem.lower() not in NOT_REPORTS)


def _resolved(f: Path) -> Path | None:
    try:
        return f.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None


def _folder_files(folder: Path, wanted: set[str]) -> list[tuple[Path, Path]]:
    """(path, resolved path) of the candidates under a folder that stay inside it, one per
    resolved file, sorted by path.

    Symlinked folders are never descended into: one leading outside must not pull in files
    from elsewhere, one leading inside adds nothing the walk does not already reach, and a
    cycle would never end. A symlinked file is kept only if it resolves inside the folder;
    when it and its target are both found, the real file's own path is kept.
    """
    root = _resolved(folder)
    if root is None:
        return []
    by_target: dict[Path, Path] = {}
    for dirpath, _dirnames, filenames in os.walk(folder, followlinks=False):
        for name in filenames:
            f = Path(dirpath) / name
            if not is_report_candidate(f, wanted):
                continue
            target = _resolved(f)
            if target is None or not target.is_relative_to(root):
                continue
            kept = by_target.get(target)
            if kept is None or (f.is_symlink(), f) < (kept.is_symlink(), kept):
                by_target[target] = f
    return sorted(((f, t) for t, f in by_target.items()), key=lambda pair: pair[0])


def expand_paths(paths: list[Path], suffixes: Iterable[str] = SUPPORTED_SUFFIXES) -> list[Path]:
    """Files named directly (always, as given, so a bad one gets its error), plus the report
    candidates found under named folders (sorted per folder), skipping any file already taken."""
    wanted = set(suffixes)
    out: list[Path] = []
    taken: set[Path] = set()
    for p in paths:
        if p.is_dir():
            for f, target in _folder_files(p, wanted):
                if target not in taken:
                    taken.add(target)
                    out.append(f)
        else:
            out.append(p)
            target = _resolved(p)
            if target is not None:
                taken.add(target)
    return out
