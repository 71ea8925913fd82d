"""A normalised view of a source text that remembers, for every character, where it came from.

Segmentation, rules and search work on the clean view; every span they produce is mapped
back through :meth:`NormText.span` to the original text, so ``original[start:end] ==
span.text`` holds by construction, whatever was dropped or rewritten in between (page
numbers, pinyin annotations, markdown bold, mojibake, line breaks inside wrapped cells).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Iterable

from llmstruct.schema import Span, TextField

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_PUNCT = "，。、；：？！“”‘’（）《》〈〉【】—…·「」『』〔〕"
_CJK_OR_PUNCT = f"[{CJK}{CJK_PUNCT}]"

_SPACES = "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t"
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_PINYIN_LETTERS = "a-zA-Zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňḿ"


@dataclass(frozen=True)
class NormText:
    """Clean text plus ``index[i]``: the original offset of clean character ``i``."""

    text: str
    index: tuple[int, ...]
    original: str

    def span(self, start: int, end: int) -> Span:
        """The original span covering clean range ``[start, end)``."""
        if end <= start:
            pos = self.index[start] if start < len(self.index) else len(self.original)
            return Span(start=pos, end=pos, text="")
        o_start = self.index[start]
        o_end = self.index[end - 1] + 1
        return Span(start=o_start, end=o_end, text=self.original[o_start:o_end])

    def strip(self, start: int, end: int) -> tuple[int, int]:
        """Clean range ``[start, end)`` without leading and trailing white space."""
        while start < end and self.text[start].isspace():
            start += 1
        while end > start and self.text[end - 1].isspace():
            end -= 1
        return start, end

    def locate(self, original_pos: int) -> int:
        """First clean position whose original offset is at or after ``original_pos``."""
        return bisect.bisect_left(self.index, original_pos)

    def field(self, ranges: Iterable[tuple[int, int]], joiner: str = "") -> TextField:
        """A TextField from one or more clean ranges (several when a passage is interrupted)."""
        ranges = [(a, b) for a, b in ranges if b > a]
        spans = [self.span(a, b) for a, b in ranges]
        text = joiner.join(clean_text(self.text[a:b]) for a, b in ranges)
        return TextField(text=text, spans=spans)

    def sub(self, pattern: str | re.Pattern[str], repl: str | Callable[[re.Match[str]], str]) -> "NormText":
        """Regex substitution that keeps the offset map.

        Deleted characters disappear; a replacement of the same length maps one to one;
        any other replacement maps all its characters to the start of the match.
        """
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        chars: list[str] = []
        index: list[int] = []
        last = 0
        for m in rx.finditer(self.text):
            chars.append(self.text[last : m.start()])
            index.extend(self.index[last : m.start()])
            new = repl(m) if callable(repl) else m.expand(repl)
            if new:
                chars.append(new)
                if len(new) == m.end() - m.start():
                    index.extend(self.index[m.start() : m.end()])
                else:
                    anchor = self.index[m.start()] if m.start() < len(self.index) else len(self.original)
                    index.extend([anchor] * len(new))
            last = m.end()
        chars.append(self.text[last:])
        index.extend(self.index[last:])
        return NormText(text="".join(chars), index=tuple(index), original=self.original)

    def translate(self, table: dict[int, str]) -> "NormText":
        """One-to-one character mapping (Traditional to Simplified, full width to half width)."""
        return NormText(text=self.text.translate(table), index=self.index, original=self.original)


def squash_lines(text: str) -> str:
    """Join wrapped lines: drop line breaks and the spaces around them."""
    return re.sub(r"\s*\n\s*", "", text).strip()


def clean_text(text: str) -> str:
    """Readable form of a clean range: wrapped lines joined, spaces next to Chinese removed."""
    text = squash_lines(text)
    return re.sub(rf"(?<={_CJK_OR_PUNCT}) +| +(?={_CJK_OR_PUNCT})", "", text)


def identity(original: str) -> NormText:
    return NormText(text=original, index=tuple(range(len(original))), original=original)


@lru_cache(maxsize=1)
def _t2s_table() -> dict[int, str]:
    """Character-level Traditional to Simplified map from OpenCC's TSCharacters (1:1 keeps offsets)."""
    path = resources.files("opencc") / "dictionary" / "TSCharacters.txt"
    table: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and len(parts[0]) == 1:
            target = parts[1].split(" ")[0]
            if len(target) == 1 and target != parts[0]:
                table[ord(parts[0])] = target
    return table


def traditional_ratio(text: str) -> float:
    """Share of CJK characters that are Traditional-only forms."""
    table = _t2s_table()
    cjk = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if not cjk:
        return 0.0
    return sum(1 for c in cjk if ord(c) in table) / len(cjk)


def to_simplified(text: str) -> str:
    return text.translate(_t2s_table())


_WIDTH_TABLE = {
    **{0xFF10 + i: str(i) for i in range(10)},
    **{0xFF21 + i: chr(0x41 + i) for i in range(26)},
    **{0xFF41 + i: chr(0x61 + i) for i in range(26)},
    0xFF05: "%",
    0xFF0E: ".",
    0xFF0B: "+",
    0xFF0D: "-",
    0xFF0F: "/",
    0xFF1D: "=",
    **{ord(c): " " for c in _SPACES},
}

_PAGE_NUMBER = re.compile(r"(?m)^[ \t]*[—–\-－]+[ \t]*\d{1,4}[ \t]*[—–\-－]+[ \t]*\n?")
_PINYIN = re.compile(rf"(?<=[{CJK}])\(([{_PINYIN_LETTERS}]{{1,7}})\)")
_MOJIBAKE = re.compile(r"\?{2,}")
_BOLD = re.compile(r"\*\*")


def _is_pinyin(m: re.Match[str]) -> str:
    syllable = m.group(1)
    if re.search(r"[aeiouüāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ]", syllable.lower()) and syllable.islower():
        return ""
    return m.group(0)


def _ascii_punct_to_cjk(m: re.Match[str]) -> str:
    return {",": "，", ":": "：", ";": "；", "(": "（", ")": "）", "?": "？", "!": "！"}[m.group(0)]


def _cjk_parens(m: re.Match[str]) -> str:
    """A bracket pair around Chinese text becomes （…）, so rules match one form only."""
    inner = m.group(1)
    if re.search(f"[{CJK}]", inner):
        return f"（{inner}）"
    return m.group(0)


@dataclass(frozen=True)
class NormalizeReport:
    traditional: bool
    pinyin_dropped: int
    mojibake_dropped: int
    page_numbers_dropped: int


def normalize(original: str) -> tuple[NormText, NormalizeReport]:
    """The clean view used by every later stage.

    Steps, each keeping the offset map: zero-width characters dropped; full-width digits,
    letters and odd spaces folded to ASCII; markdown bold markers, page-number lines
    (``— 1—``) and pinyin annotations (``現(xiàn)在``) dropped; ``??`` mojibake shown as one
    U+FFFD so readers see that something was lost; ASCII
    punctuation next to Chinese turned into its Chinese form; Traditional characters mapped
    to Simplified (only when the text is Traditional). Line breaks are kept: joining
    wrapped lines is a layout decision made by segmentation.
    """
    nt = identity(original)
    nt = nt.sub(f"[{_ZERO_WIDTH}]", "")
    nt = nt.translate(_WIDTH_TABLE)
    pages = len(_PAGE_NUMBER.findall(nt.text))
    nt = nt.sub(_PAGE_NUMBER, "")
    nt = nt.sub(_BOLD, "")
    before = len(nt.text)
    nt = nt.sub(_PINYIN, _is_pinyin)
    pinyin = before - len(nt.text)
    mojibake = len(_MOJIBAKE.findall(nt.text))
    nt = nt.sub(_MOJIBAKE, "\ufffd")
    nt = nt.sub(rf"(?<={_CJK_OR_PUNCT})[,:;?!]|[,:;?!](?=[{CJK}“（])", _ascii_punct_to_cjk)
    nt = nt.sub(r"[(（]([^()（）\n]{0,200})[)）]", _cjk_parens)
    traditional = traditional_ratio(nt.text) > 0.02
    if traditional:
        nt = nt.translate(_t2s_table())
    report = NormalizeReport(traditional, pinyin, mojibake, pages)
    return nt, report


def drop_inline_spaces(nt: NormText) -> NormText:
    """Remove spaces next to Chinese characters (``增长 7%`` -> ``增长7%``); keep line breaks."""
    return nt.sub(rf"(?<={_CJK_OR_PUNCT})[ ]+|[ ]+(?={_CJK_OR_PUNCT})", "")
