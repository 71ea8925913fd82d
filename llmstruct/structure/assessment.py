"""Progress against target, judged by code from the grounded figures of one item.

A bulletin rarely says "behind" in words; its figures do. For each progress entry without a
decisive status word this module compares, in this order:

1. the text's own completion ratio (完成全年目标的57.9%) with the share of the year the
   entry reports on (上半年 = 50%, 1-5月 = 5/12, 前三季度 = 75%);
2. a reported growth rate (同比增长27.4%) with the target rate of the same indicator
   (增长7%左右);
3. a cumulative amount (累计盘活土地1090.2亩) over the target amount (2000亩以上), converted to
   one unit (万元/亿元, 万人/人), with the share of the year.

Figures are paired by indicator name under variants (规模以上/规上, 全县…, 实现/完成/新增)
and by compatible units. Every judgement carries its basis: the spans of both figures, of
the period words, the numbers and a one-line Chinese explanation. No period words, no
comparable target: no judgement (the entry stays ``in_progress``).
"""

from __future__ import annotations

import re

from llmstruct.schema import Assessment, Indicator, Progress, Span, TaskItem
from llmstruct.text.normalize import NormText

_CN_MONTH = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10,
             "十一": 11, "十二": 12}
_MONTH = r"(\d{1,2}|十[一二]?|[一二两三四五六七八九])"
# (pattern, months elapsed or None to read the month from group 1); most specific first
_PERIODS: list[tuple[re.Pattern[str], int | None]] = [
    (re.compile(r"前三季度|三季度末|第三季度末"), 9),
    (re.compile(r"上半年|前两个?季度|二季度末|第二季度末|前半年"), 6),
    (re.compile(r"(?:第)?一季度"), 3),
    (re.compile(rf"(?:1|一)\s*(?:-|—|–|～|~|至|到)\s*{_MONTH}\s*月"), None),
    (re.compile(rf"截(?:至|止)(?:到)?\s*(?:\d{{4}}\s*年\s*)?{_MONTH}\s*月"), None),
    (re.compile(rf"{_MONTH}\s*月(?:末|底)"), None),
    (re.compile(r"前(\d{1,2}|[一二两三四五六七八九十]{1,2})个月"), None),
]
_STATED_SHARE = re.compile(
    r"(?:完成|达到|占)(?:了)?(?:全年|年度|年)?(?:目标任务|计划任务|目标|计划|任务)(?:任务)?(?:的)?\s*(\d+(?:\.\d+)?)\s*%")
_SENTENCE_END = "。；\n"
_NAME_NOISE = re.compile(r"^(?:全[县区市省镇乡]|我[县区市省镇]|本[县区市])|(?:实现|完成|新增|累计|各项|金融机构|全年|年度)")


def _months(m: re.Match[str], fixed: int | None) -> int | None:
    if fixed is not None:
        return fixed
    raw = m.group(1)
    n = int(raw) if raw.isdigit() else _CN_MONTH.get(raw)
    return n if n is not None and 1 <= n <= 12 else None


def _period_before(nt: NormText, lo: int, pos: int) -> tuple[float, int, int] | None:
    """The share of the year the words before ``pos`` report on: the last period phrase in
    the same sentence, else the last one earlier in the entry (from ``lo``)."""
    best: tuple[int, float, int, int] | None = None  # (prefer same sentence, start, share, end)
    sent = max(max(nt.text.rfind(ch, lo, pos) for ch in _SENTENCE_END) + 1, lo)
    for pat, fixed in _PERIODS:
        for m in pat.finditer(nt.text, lo, pos):
            months = _months(m, fixed)
            if months is None:
                continue
            key = (m.start() >= sent, m.start())
            if best is None or key > (best[0], best[1]):
                best = (key[0], m.start(), months / 12, m.end())  # type: ignore[assignment]
    if best is None:
        return None
    return best[2], best[1], best[3]  # type: ignore[return-value]


def _name(text: str) -> str:
    text = text.replace("规模以上", "规上")
    for _ in range(3):
        text = _NAME_NOISE.sub("", text)
    return text


def same_indicator(a: str, b: str) -> bool:
    """Names of the same indicator (规模以上工业增加值 / 规上工业增加值, 地区生产总值 / 全县地区生产总值)."""
    x, y = _name(a), _name(b)
    if min(len(x), len(y)) < 4:  # 收入, 投资: too short to tell one indicator from another
        return x == y and len(x) >= 3
    if x in y or y in x:
        return True
    bx = {x[i:i + 2] for i in range(len(x) - 1)}
    by = {y[i:i + 2] for i in range(len(y) - 1)}
    return 2 * len(bx & by) / (len(bx) + len(by)) >= 0.7


def _rate(ind: Indicator) -> float | None:
    """A growth rate in per cent, signed (下降3% = -3), or None."""
    ch = ind.change
    if ch is None or ch.unit != "%":
        return None
    return -ch.value if ch.direction == "down" else (0.0 if ch.direction == "flat" else ch.value)


_SCALE = {"万亿元": (1e12, "元"), "亿元": (1e8, "元"), "万元": (1e4, "元"), "元": (1.0, "元"), "万人": (1e4, "人"),
          "人": (1.0, "人"), "万人次": (1e4, "人次"), "人次": (1.0, "人次"), "万户": (1e4, "户"), "户": (1.0, "户"),
          "万亩": (1e4, "亩"), "亩": (1.0, "亩"), "万平方米": (1e4, "平方米"), "平方米": (1.0, "平方米"),
          "万吨": (1e4, "吨"), "吨": (1.0, "吨"), "万千瓦": (1e4, "千瓦"), "千瓦": (1.0, "千瓦")}


def _amount(ind: Indicator) -> tuple[float, str] | None:
    """A cumulative amount in base units (亿元 -> 元), or None for rates and shares."""
    if ind.value is None or ind.unit in ("%", "‰", "个百分点", "倍") or (ind.change and ind.change.unit == "%"):
        return None
    scale, base = _SCALE.get(ind.unit, (1.0, ind.unit))
    return ind.value * scale, base


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _span(nt: NormText, a: int, b: int) -> Span:
    return nt.span(a, b)


def assess_progress(nt: NormText, item: TaskItem, p: Progress) -> Assessment | None:
    """The judgement of one progress entry against the item's targets, or None."""
    if not p.text.spans:
        return None
    lo, hi = nt.locate(p.text.spans[0].start), nt.locate(p.text.spans[-1].end)
    for m in _STATED_SHARE.finditer(nt.text, lo, hi):
        period = _period_before(nt, lo, m.start())
        if period is None:
            continue
        share, ps, pe = period
        done = float(m.group(1))
        ok = done >= share * 100 - 0.05
        return Assessment(status="on_track" if ok else "behind", basis="stated_share", actual=_span(nt, m.start(), m.end()),
                          actual_value=done, elapsed=round(share, 4), period=_span(nt, ps, pe),
                          explanation=f"完成目标的{_fmt(done)}%，{'不低于' if ok else '低于'}序时进度{_fmt(share * 100)}%")
    found: list[Assessment] = []
    actuals = [g for g in p.indicators if g.kind in ("actual", "forecast")]
    for t in item.targets:
        t_rate, t_amount = _rate(t), _amount(t)
        for g in actuals:
            if not same_indicator(t.name, g.name):
                continue
            g_start = nt.locate(g.evidence.start)
            if t_rate is not None and (g_rate := _rate(g)) is not None:
                need = t_rate - (0.5 if t.qualifier == "approx" else 0.0)
                ok = g_rate >= need if t.qualifier != "at_most" else g_rate <= t_rate
                found.append(Assessment(
                    status="on_track" if ok else "behind", basis="growth_rate", actual=g.evidence, target=t.evidence,
                    actual_value=g_rate, target_value=t_rate,
                    explanation=f"{t.name[:20]}增速{_fmt(g_rate)}%，目标{_fmt(t_rate)}%，{'达到' if ok else '未达到'}目标"))
                break
            g_amount = _amount(g)
            if t_amount is None or g_amount is None or t_amount[1] != g_amount[1] or t_amount[0] <= 0:
                continue
            if t.qualifier == "at_most" or ("余额" in g.name and "余额" not in t.name):
                continue
            ratio = g_amount[0] / t_amount[0]
            period = _period_before(nt, lo, g_start)
            if period is None or ratio > 3:  # no time share, or a stock set against an increment
                continue
            share, ps, pe = period
            ok = ratio >= share - 0.005
            found.append(Assessment(
                status="on_track" if ok else "behind", basis="time_share", actual=g.evidence, target=t.evidence,
                actual_value=g.value or 0.0, target_value=t.value, elapsed=round(share, 4), period=_span(nt, ps, pe),
                explanation=f"{t.name[:20]}完成目标的{_fmt(ratio * 100)}%，{'不低于' if ok else '低于'}序时进度"
                            f"{_fmt(share * 100)}%"))
            break
    behind = [a for a in found if a.status == "behind"]
    return behind[0] if behind else (found[0] if found else None)


def assess_item(nt: NormText, item: TaskItem) -> list[Progress]:
    """The item's progress entries with their assessments; an entry whose words say only that
    work is under way takes the assessed status (a decisive word such as 暂低于 or 已全部完成
    always wins)."""
    out = []
    for p in item.progress:
        a = assess_progress(nt, item, p)
        update: dict[str, object] = {"assessment": a}
        if a is not None and p.status in (None, "in_progress"):  # 正在/推进中 say nothing of pace
            update.update(status=a.status, status_cue=a.actual if a.basis == "stated_share" else None)
        out.append(p.model_copy(update=update))
    return out


__all__ = ["assess_item", "assess_progress", "same_indicator"]
