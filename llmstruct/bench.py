"""Benchmarks that print numbers; speed targets live here, not in timed tests."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from llmstruct.formats import read_source
from llmstruct.pipeline import expand_paths, structure_source


def rules_benchmark(paths: list[Path], repeat: int = 5) -> dict:
    """Rules-only structuring of ``paths``: median seconds per pass and throughput.

    Reading files is timed separately from structuring, so disk noise does not hide the
    pipeline's own cost. Each pass structures every file once; the median of ``repeat``
    passes is reported with the spread.
    """
    files = expand_paths(paths)
    t0 = time.perf_counter()
    sources = [read_source(f) for f in files]
    read_s = time.perf_counter() - t0
    chars = sum(len(s.text) for s in sources)
    timings = []
    reports = items = 0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        results = [structure_source(s) for s in sources]
        timings.append(time.perf_counter() - t0)
        reports = sum(len(r.records) for r in results)
        items = sum(len(rec.items) for r in results for rec in r.records)
    median = statistics.median(timings)
    return {
        "benchmark": "rules_only",
        "files": len(files),
        "characters": chars,
        "reports": reports,
        "items": items,
        "read_seconds": round(read_s, 4),
        "repeat": len(timings),
        "structure_seconds_median": round(median, 4),
        "structure_seconds_min": round(min(timings), 4),
        "structure_seconds_max": round(max(timings), 4),
        "items_per_second": round(items / median, 1) if median else None,
        "characters_per_second": round(chars / median) if median else None,
    }
