"""How much of a report its records hold: the share of its figures (number with unit) and of
its text that lie inside some item. A report whose figures fall outside every item has a
layout the segmenter did not understand; ``structure`` says so instead of staying silent."""

from __future__ import annotations

import bisect

from llmstruct.schema import Coverage, DocumentRecord
from llmstruct.structure.figures import find_figures
from llmstruct.text.normalize import NormText

# Below this share of figures inside items a record gets a warning.
MIN_FIGURE_COVERAGE = 0.8


def figure_share(cov: Coverage) -> float | None:
    return cov.figures_in_items / cov.figures if cov.figures else None


def text_share(cov: Coverage) -> float | None:
    return cov.chars_in_items / cov.chars if cov.chars else None


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def record_coverage(rec: DocumentRecord, nt: NormText) -> Coverage:
    """Figures and text of the record's slice of the file, and how much of each its items hold."""
    spans = [(s.start, s.end) for it in rec.items for f in (it.task, *(p.text for p in it.progress)) for s in f.spans]
    inside = _merged(spans)
    starts = [a for a, _ in inside]

    def covered(pos: int) -> bool:
        k = bisect.bisect_right(starts, pos) - 1
        return k >= 0 and inside[k][0] <= pos < inside[k][1]

    lo, hi = nt.locate(rec.source_range.start), nt.locate(rec.source_range.end)
    figs = find_figures(nt, lo, hi)
    in_items = sum(covered(nt.index[f.start]) for f in figs if f.start < len(nt.index))
    original = nt.original
    a, b = rec.source_range.start, rec.source_range.end
    chars = sum(1 for ch in original[a:b] if not ch.isspace())
    chars_in = sum(1 for x, y in inside for ch in original[max(x, a):min(y, b)] if not ch.isspace())
    return Coverage(figures=len(figs), figures_in_items=in_items, chars=chars, chars_in_items=chars_in)


def coverage_warning(cov: Coverage) -> str | None:
    share = figure_share(cov)
    if share is None or share >= MIN_FIGURE_COVERAGE:
        return None
    return (f"only {share:.0%} of the report's {cov.figures} figures lie inside task items "
            f"(text {text_share(cov) or 0:.0%}): its layout may not have been understood")


__all__ = ["MIN_FIGURE_COVERAGE", "coverage_warning", "figure_share", "record_coverage", "text_share"]
