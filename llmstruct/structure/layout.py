"""Lines, paragraphs and report boundaries of a normalised text, in clean-text coordinates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

from llmstruct.text.normalize import NormText

CN_DIGITS = {"〇": 0, "○": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}


def cn_number(text: str) -> int | None:
    """Value of a Chinese numeral up to 99 (一, 十二, 二十三) or a digit string."""
    if text.isdigit():
        return int(text)
    if not text or any(c not in CN_DIGITS and c != "十" for c in text):
        return None
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (CN_DIGITS[tens] if tens else 1) * 10 + (CN_DIGITS[ones] if ones else 0)
    if len(text) == 1:
        return CN_DIGITS[text]
    return None


@dataclass(frozen=True)
class Line:
    """A non-empty line: ``start``/``end`` bound its stripped text in clean coordinates."""

    start: int
    end: int
    text: str
    indented: bool


def lines(nt: NormText, start: int = 0, end: int | None = None) -> list[Line]:
    """Non-empty lines of ``nt.text[start:end]``, stripped, in clean coordinates."""
    end = len(nt.text) if end is None else end
    out: list[Line] = []
    pos = start
    for raw in nt.text[start:end].split("\n"):
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            s = pos + lead
            out.append(Line(s, s + len(stripped), stripped, lead > 0))
        pos += len(raw) + 1
    return out


_LONG_LINE = 1000
_HEADING_START = r"(?:[一二三四五六七八九十]{1,3}、|（[一二三四五六七八九十]{1,3}）)"


def unflatten(nt: NormText) -> NormText:
    """Restore paragraph breaks in web pages that flattened a whole report onto one line.

    Only lines longer than 1,000 characters are touched: there a run of two or more spaces,
    a space after a sentence end, a space before a heading marker (一、 / （一）), and the
    first space after a short heading become line breaks, and a break is added before a part
    heading glued to the previous sentence (``。2019年工作安排``). The index keeps every
    clean character tied to its original position.
    """
    long_ranges = [(m.start(), m.end()) for m in re.finditer(r"[^\n]{%d,}" % _LONG_LINE, nt.text)]
    if not long_ranges:
        return nt

    def in_long(pos: int) -> bool:
        return any(a <= pos < b for a, b in long_ranges)

    def breaks(m: re.Match[str]) -> str:
        return "\n" * len(m.group(0)) if in_long(m.start()) else m.group(0)

    nt = nt.sub(rf"(?<=[。！？：；])[ ]+|[ ]{{2,}}|(?<![第 ])[ ]+(?={_HEADING_START})", breaks)

    def part_break(m: re.Match[str]) -> str:
        return "。\n" if in_long(m.start()) else m.group(0)

    nt = nt.sub(r"。(?=\d{4}年(?:工作回顾|工作安排|重点工作安排))", part_break)

    def heading_break(m: re.Match[str]) -> str:
        return m.group(1) + "\n" if in_long(m.start()) else m.group(0)

    return nt.sub(rf"(?m)^({_HEADING_START}[^ \n。]{{2,40}}) ", heading_break)


@dataclass(frozen=True)
class ReportSlice:
    """One report inside a file: clean range, and its title line when the file is a compilation."""

    start: int
    end: int
    title_line: Line | None

    def moved_to(self, old: NormText, new: NormText) -> "ReportSlice":
        """The same report in another clean view of the same original (after :func:`unflatten`)."""

        def move(pos: int, is_end: bool) -> int:
            if is_end:
                return new.locate(old.index[pos - 1] + 1) if pos else 0
            return new.locate(old.index[pos]) if pos < len(old.index) else len(new.text)

        title = None
        if self.title_line is not None:
            t = self.title_line
            title = Line(move(t.start, False), move(t.end, True), t.text, t.indented)
        return ReportSlice(move(self.start, False), move(self.end, True), title)


_COMPILATION_TITLE = re.compile(r"^(?:[•·●▪■◆\-*]\s*)?(?:【[^】]{1,20}】)?.{0,30}政府工作报告\s*$")


def split_reports(nt: NormText) -> list[ReportSlice]:
    """Split a compilation page (several work reports, each under its own title) into reports.

    A file with two or more short title lines ending in 政府工作报告, each followed by a long
    body, is a compilation: each report runs from its title over the following long lines
    (and a lone publication date), so site boilerplate after the last report is left out.
    Anything else is one report covering the whole text.
    """
    all_lines = lines(nt)
    titles = [i for i, ln in enumerate(all_lines)
              if len(ln.text) <= 80 and _COMPILATION_TITLE.match(ln.text)
              and i + 1 < len(all_lines) and len(all_lines[i + 1].text) >= 500]
    if len(titles) < 2:
        return [ReportSlice(0, len(nt.text), None)]
    reports = []
    for n, i in enumerate(titles):
        stop = titles[n + 1] if n + 1 < len(titles) else len(all_lines)
        j = i + 1
        while j < stop and (len(all_lines[j].text) >= 200 or _is_date_line(all_lines[j].text)):
            j += 1
        reports.append(ReportSlice(all_lines[i].start, all_lines[j - 1].end, all_lines[i]))
    return reports


def _is_date_line(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?", text))


# A reporting period, then what a progress report reports on it (上半年…执行情况, 1-8月份进展情况,
# 第三季度落实情况), or such a report named as one (进展情况的通报, 推进情况（1-11月）).
_PERIOD = r"(?:上半年|半年|前三季度|第?[一二三四]季度|1\s*[-－—~～至到]\s*\d{1,2}\s*月份?|\d{1,2}月份|\d{1,2}月(?:底|末))"
_ON = r"(?:执行|完成|落实|进展|推进)情况"
_PROGRESS_HEAD = re.compile(
    rf"{_PERIOD}[^。\n]{{0,40}}?{_ON}|{_ON}的?(?:报告|通报|汇报)|{_ON}\s*[（(]\s*{_PERIOD}|{_PERIOD}[^。\n]{{0,20}}?工作总结"
)
_HEAD_LINES = 8
_HEAD_LINE_MAX = 120


@lru_cache(maxsize=8)
def _report_heads(text: str) -> tuple[tuple[int, bool], ...]:
    """(start, is a progress report) of each report in ``text`` (see :func:`split_reports`)."""
    view = SimpleNamespace(text=text)
    out = []
    for sl in split_reports(view):  # type: ignore[arg-type]
        head = [ln.text for ln in lines(view, sl.start, sl.end)[:_HEAD_LINES]  # type: ignore[arg-type]
                if len(ln.text) <= _HEAD_LINE_MAX]
        out.append((sl.start, any(_PROGRESS_HEAD.search(t) for t in head)))
    return tuple(out)


def in_progress_report(nt: NormText, pos: int) -> bool:
    """Whether clean position ``pos`` lies in a report on how work went in a period (a
    半年/季度/1-N月 执行情况, 落实情况 or 进展情况 report or bulletin), judged by the short lines
    that open the report (title, issuer, first sentence): there a paragraph's figures are
    what was achieved, and 上半年 is the period reported on, not a deadline."""
    found = False
    for start, progress in _report_heads(nt.text):
        if start > pos:
            break
        found = progress
    return found
