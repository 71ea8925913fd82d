"""Normalisation and span arithmetic shared by every scorer.

Gold labels are written as printed (Traditional in 002, half-width punctuation in 000,
names wrapped across lines in 003); system outputs carry clean text. Both sides go
through the project's own normaliser before they are compared, so a score measures what
was extracted, not how it was spelled.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from llmstruct.text.normalize import normalize
from llmstruct.text.units import canonical_unit

_WS = re.compile(r"\s+")
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


@lru_cache(maxsize=65536)
def norm(text: str | None) -> str:
    """Comparison form: the clean view (Simplified, full width folded, pinyin dropped) without white space."""
    if not text:
        return ""
    return _WS.sub("", normalize(text)[0].text)


def norm_unit_name(name: str) -> str:
    """A unit (organisation) name in canonical form: 县发改局 and 县发展和改革局 compare equal."""
    return canonical_unit(norm(name))


def norm_measure(unit: str | None) -> str:
    """A measurement unit (%, 亿元 ...) for comparison; a missing unit is the empty string."""
    return norm(unit or "").replace("％", "%")


def same_number(a: float | None, b: float | None, rel: float = 1e-4) -> bool:
    """Numbers equal up to rounding in the printed form."""
    if a is None or b is None:
        return False
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def name_match(pred: str, gold: str) -> bool:
    """Indicator names match when equal after normalisation or one contains the other.

    Gold names are normalised labels (经济开发区签约项目) and a system may keep the shorter
    words of the clause (签约项目); containment accepts both, a two-character floor stops
    one-character names from matching everything.
    """
    p, g = norm(pred), norm(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    short, long_ = sorted((p, g), key=len)
    return len(short) >= 2 and short in long_


def numbers_in(text: str) -> list[str]:
    """Numbers written in ``text`` (thousands commas dropped), in the clean view."""
    return [m.group(0).replace(",", "") for m in NUMBER.finditer(norm(text))]


def gap(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Characters between two half-open ranges (0 when they touch or overlap)."""
    return max(0, max(a[0], b[0]) - min(a[1], b[1]))


def overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def find_all(text: str, quote: str, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
    """Every occurrence of ``quote`` inside ``text[lo:hi]`` as (start, end) offsets."""
    hi = len(text) if hi is None else hi
    out = []
    pos = text.find(quote, lo, hi)
    while pos >= 0 and quote:
        out.append((pos, pos + len(quote)))
        pos = text.find(quote, pos + 1, hi)
    return out


def locate_near(text: str, quote: str, lo: int, hi: int, anchor: int) -> tuple[int, int] | None:
    """The occurrence of ``quote`` in ``[lo, hi)`` first at or after ``anchor``, else the last before it."""
    hits = find_all(text, quote, lo, hi)
    if not hits:
        return None
    after = [h for h in hits if h[0] >= anchor]
    return after[0] if after else hits[-1]


@dataclass(frozen=True)
class PRF:
    """Counts behind a precision/recall/F1 triple; ``None`` when a rate has no denominator."""

    tp: int
    pred: int
    gold: int

    @property
    def precision(self) -> float | None:
        return self.tp / self.pred if self.pred else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.gold if self.gold else None

    @property
    def f1(self) -> float | None:
        """2·TP / (predicted + gold): 0 when one side is empty and the other is not, None when both are."""
        total = self.pred + self.gold
        return 2 * self.tp / total if total else None

    def __add__(self, other: "PRF") -> "PRF":
        return PRF(self.tp + other.tp, self.pred + other.pred, self.gold + other.gold)

    def as_dict(self) -> dict:
        return {"precision": rnd(self.precision), "recall": rnd(self.recall), "f1": rnd(self.f1),
                "tp": self.tp, "pred": self.pred, "gold": self.gold}


@dataclass(frozen=True)
class Rate:
    """A share with its counts (``None`` when nothing was counted)."""

    hits: int
    total: int

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    def __add__(self, other: "Rate") -> "Rate":
        return Rate(self.hits + other.hits, self.total + other.total)

    def as_dict(self) -> dict:
        return {"rate": rnd(self.value), "hits": self.hits, "total": self.total}


def rnd(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def multiset_tp(pred: list[str], gold: list[str]) -> int:
    """Matches between two bags of normalised strings, each element used once."""
    left = list(gold)
    tp = 0
    for p in pred:
        if p in left:
            left.remove(p)
            tp += 1
    return tp


def bag_prf(pred: list[str], gold: list[str]) -> PRF:
    return PRF(multiset_tp(pred, gold), len(pred), len(gold))
