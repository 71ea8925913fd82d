"""Align a quote (from a model or a person) to the original text, character by character.

Three steps, the first that succeeds wins: ``exact`` (the quote occurs verbatim in the
original range), ``normalized`` (it occurs once both sides are normalised: Traditional to
Simplified, full width folded, spaces and line breaks ignored), ``fuzzy`` (the best
window of the clean text by character similarity, accepted at a ratio of 0.85 or more).
Never token-based: Qwen's tokenizer groups several Chinese characters into one token.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from llmstruct.schema import Alignment, Span
from llmstruct.text.normalize import NormText, normalize

FUZZY_MIN_RATIO = 0.85
_SKIP = re.compile(r"\s")


@dataclass(frozen=True)
class Aligned:
    span: Span
    alignment: Alignment
    ratio: float


def compact(text: str) -> str:
    """The comparison form of a quote: the clean view's characters minus white space."""
    nt, _ = normalize(text)
    return _SKIP.sub("", nt.text)


def align(quote: str, clean: NormText, start: int, end: int) -> Aligned | None:
    """Where ``quote`` sits inside clean range ``[start, end)``, as an original-text span."""
    quote = quote.strip()
    if not quote:
        return None
    o_start = clean.index[start] if start < len(clean.index) else len(clean.original)
    o_end = clean.index[end - 1] + 1 if end > start else o_start
    pos = clean.original.find(quote, o_start, o_end)
    if pos >= 0:
        return Aligned(Span(start=pos, end=pos + len(quote), text=quote), "exact", 1.0)

    # Compact view of the clean range: drop white space, remember clean positions.
    keep = [i for i in range(start, end) if not _SKIP.match(clean.text[i])]
    hay = "".join(clean.text[i] for i in keep)
    needle = compact(quote)
    if not needle or not hay:
        return None
    pos = hay.find(needle)
    if pos >= 0:
        return Aligned(clean.span(keep[pos], keep[pos + len(needle) - 1] + 1), "normalized", 1.0)

    best = _best_window(needle, hay)
    if best is None:
        return None
    a, b, ratio = best
    if ratio < FUZZY_MIN_RATIO:
        return None
    return Aligned(clean.span(keep[a], keep[b - 1] + 1), "fuzzy", round(ratio, 3))


def _best_window(needle: str, hay: str) -> tuple[int, int, float] | None:
    """Best-matching window of ``hay`` for ``needle`` by character similarity."""
    n = len(needle)
    if n > len(hay) + n // 5:
        return None
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(needle)
    best: tuple[int, int, float] | None = None
    # Anchor candidate windows on positions where the needle's first or last characters occur.
    anchors = {m.start() for ch in {needle[0], needle[-1]} for m in re.finditer(re.escape(ch), hay)}
    for anchor in anchors:
        for a in (anchor, anchor - n + 1):
            for width in (n - 1, n, n + 1):
                lo, hi = max(0, a), min(len(hay), a + width)
                if hi - lo < max(1, n - n // 5):
                    continue
                matcher.set_seq1(hay[lo:hi])
                ratio = matcher.ratio()
                if best is None or ratio > best[2]:
                    best = (lo, hi, ratio)
    return best
