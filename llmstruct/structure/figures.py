"""Figures written in the text: number, unit, qualifier and change direction, by rules.

The text marks these explicitly (``增长7%左右``, ``10.1亿元``, ``5家以上``), so rules own
them; the model only judges what needs reading (the indicator's name and kind). Every
figure keeps the clean range of its evidence, so it stays grounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmstruct.text.normalize import NormText

UNITS = (
    "亿美元", "万美元", "万亿元", "亿元", "万元", "元", "个百分点", "%", "‰", "万人次", "人次", "万人", "人", "万户", "户",
    "万亩", "亩", "万平方米", "平方米", "平方公里", "公里", "千米", "米", "万吨", "吨", "千瓦", "万千瓦", "家", "个", "座",
    "所", "项", "处", "次", "台", "辆", "套", "件", "批", "场", "条", "倍", "张", "部", "名", "万株", "株", "床",
)
_SCALE = {"万亿元": (1e12, "元"), "亿元": (1e8, "元"), "万元": (1e4, "元"), "亿美元": (1e8, "美元"),
          "万美元": (1e4, "美元"), "万人": (1e4, "人"), "万人次": (1e4, "人次"), "万户": (1e4, "户"),
          "万亩": (1e4, "亩"), "万平方米": (1e4, "平方米"), "万吨": (1e4, "吨"), "万千瓦": (1e4, "千瓦"),
          "万株": (1e4, "株")}
_UNIT_RX = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_FIGURE = re.compile(
    rf"(?P<pre>约|近|超过|超|达到|达|不低于|不少于|不超过|突破)?\s*"
    rf"(?P<num>\d+(?:[.,]\d+)*)\s*(?P<unit>{_UNIT_RX})\s*(?P<post>左右|以上|以内|以下|上下|多|余)?"
)
_CHANGE = re.compile(r"(增长|增加|提高|上升|提升|增幅|增速|同比增长|下降|减少|降低|回落|下降了|持平)[了为达到至]*$")
_DOWN = ("下降", "减少", "降低", "回落")


@dataclass(frozen=True)
class Figure:
    """One figure: clean range of the evidence and of the number, and what rules can read."""

    start: int
    end: int
    number: str
    value: float
    unit: str
    qualifier: str
    change: str | None
    base_value: float | None
    base_unit: str

    def evidence(self, nt: NormText) -> str:
        return nt.text[self.start:self.end]


def _qualifier(pre: str | None, post: str | None) -> str:
    if post in ("左右", "上下") or pre in ("约", "近"):
        return "approx"
    if post in ("以上", "多", "余") or pre in ("超过", "超", "不低于", "不少于", "突破"):
        return "at_least"
    if post in ("以内", "以下") or pre == "不超过":
        return "at_most"
    return "exact"


def find_figures(nt: NormText, start: int, end: int) -> list[Figure]:
    """Every number with a unit in clean range ``[start, end)``.

    Years (2021年), date ranges (1-9月) and ordinals (第3位) are not figures: the unit list
    has no 年/月/日/位 and a number directly after 第 is skipped.
    """
    out: list[Figure] = []
    text = nt.text
    for m in _FIGURE.finditer(text, start, end):
        before_num = text[max(start, m.start("num") - 3):m.start("num")].rstrip()
        if before_num.endswith(("第", "-", "—", "～", "~")):
            continue
        number = m.group("num")
        try:
            value = float(number.replace(",", ""))
        except ValueError:
            continue
        unit = m.group("unit")
        window = re.sub(r"\s", "", text[max(start, m.start() - 8):m.start()])
        cm = _CHANGE.search(window)
        change = None
        if cm:
            change = "down" if cm.group(1).startswith(_DOWN) else ("flat" if cm.group(1) == "持平" else "up")
        scale, base_unit = _SCALE.get(unit, (1.0, unit))
        if unit in ("%", "个百分点", "‰"):
            base = None
        else:
            base = value * scale
        ev_start = m.start("pre") if m.group("pre") else m.start("num")
        out.append(Figure(ev_start, m.end(), number, value, unit, _qualifier(m.group("pre"), m.group("post")),
                          change, base, base_unit))
    return out


_CLAUSE_BREAK = re.compile(r"[，。；：、（）“”\n]")
_LEAD_NOISE = re.compile(r"^(?:\d{4}年|可|将|一季度|二季度|三季度|前三季度|全年|上半年|下半年|今年|年内|1-\d+月份?|\d+月份?|截至\d*月?末?|预计|力争|确保|"
                         r"实现|完成|全县|全区|全市|全镇|累计|新增|其中|共)+")
_TAIL_NOISE = re.compile(r"(?:同比|比上年|较上年|较年初)?(?:增长|增加|提高|上升|提升|下降|减少|降低|达到|达|为|是|实现|完成|约|近|超过|超|突破)+$")


def rule_name(nt: NormText, fig: Figure, floor: int) -> str:
    """A short indicator name from the clause before the figure (地区生产总值增长7% -> 地区生产总值)."""
    lo = max(floor, fig.start - 30)
    before = nt.text[lo:fig.start]
    cut = list(_CLAUSE_BREAK.finditer(before))
    if cut:
        before = before[cut[-1].end():]
    before = re.sub(r"\s", "", before)
    before = _LEAD_NOISE.sub("", before)
    before = _TAIL_NOISE.sub("", before)
    return before[-20:]
