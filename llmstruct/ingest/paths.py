"""Input files named directly or found under folders."""

from __future__ import annotations

from pathlib import Path

from llmstruct.ingest.source import SUPPORTED_SUFFIXES


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files named directly, plus supported files found under named folders (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES))
        else:
            out.append(p)
    return out
