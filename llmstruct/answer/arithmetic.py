"""Answers computed by code from cited figures: gaps to target, completion shares, changes,
sums, differences and rankings, each shown with its formula.

A number in an answer must be in a quote, or be derived by code from quoted figures. The
records hold each figure's value, unit and span, so the arithmetic is done here, every
input is cited at its span (checked against the source text) and units are converted
(万元/亿元, 万人/人) or the answer says why not. Figures of different documents are combined
only when the question names their places; a missing input is named, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.computation import SCALE as _SCALE
from llmstruct.answer.computation import fmt as _n
from llmstruct.answer.computation import formula, ranking
from llmstruct.answer.computation import share as _share
from llmstruct.answer.planning import Plan
from llmstruct.answer.terms import (
    _ASKS_PLAN,
    _MEASURE_WORDS,
    GENERIC_WORDS,
    compact,
    content_terms,
    numbers_in,
    simplify,
)
from llmstruct.answer.verification import periods
from llmstruct.schema import Answer, Citation, Computation, ComputationOp, Indicator
from llmstruct.structure.assessment import same_indicator
from llmstruct.text.normalize import normalize
from llmstruct.vocab import VOCAB

_MODES = ("gap", "share", "change", "sum", "diff", "rank")  # tried in this order
_CUES = {m: VOCAB.cue(f"arith_{m}") for m in _MODES}
_ANY_CUE = re.compile("|".join(c.pattern for c in _CUES.values()))
_LOW = VOCAB.cue("arith_low")
_ASKS_WHO = re.compile(VOCAB.cue("leader").pattern + "|" + VOCAB.cue("units").pattern)
_WANTS_RATE = re.compile(r"增长|增速|增幅|提高|下降|降低")
_SPLIT = re.compile(r"[和与及、]|(?<![同对])比(?![重例率])")  # the parts of 城镇居民与农村居民…相差
_FROM, _TO = re.compile(r"[由从]\s*$"), re.compile(r"(?:达到|增加到|增长到|提高到|提升到|增至|升至|扩大到)\s*$")
_TOWN_ENDS = ("镇", "街道", "乡")
_OTHER_MEASURE = ("年均", "五年")  # 年均增长6% is a plan period's average, not the year's figure
# qualifiers and time words say how or when a figure counts, not what it is about
_NOISE = {"以上", "以下", "左右", "以内", "截至", "截止", "月末", "月底", "年初", "年底", "年末", "今年", "去年", "上年",
          "同期", "镇街"}
_ACTUAL = ("actual", "forecast", "baseline")


@dataclass(frozen=True)
class _Fig:
    """A figure of the records with its item, reporting unit and entry text (its period)."""

    doc_id: str
    ind: Indicator
    item: str
    who: str
    context: str

    @property
    def name(self) -> str:
        return simplify(self.ind.name).replace("规模以上", "规上")

    @property
    def value(self) -> tuple[Decimal, str, int, str]:
        """(signed value, what the unit measures, its scale, unit as printed); 下降4.7% is -4.7."""
        v = Decimal(str(self.ind.value)) * (-1 if self.ind.change and self.ind.change.direction == "down" else 1)
        if self.ind.unit == "%" and self.ind.change is not None:
            return v, "增速", 1, "%"  # a growth rate is not a share (占比3.9%)
        base, scale = _SCALE.get(self.ind.unit, (self.ind.unit, 1))
        return v, base, scale, self.ind.unit


def _lcs(a: str, b: str) -> int:
    return next((k for k in range(len(a), 0, -1) if any(a[i:i + k] in b for i in range(len(a) - k + 1))), 0)


def _similar(a: str, b: str) -> float:
    if same_indicator(a, b) or (min(len(a), len(b)) >= 2 and (a in b or b in a)):
        return 1.0
    x, y = ({s[i:i + 2] for i in range(len(s) - 1)} for s in (a, b))
    return 2 * len(x & y) / (len(x) + len(y)) if x and y else 0.0


_Conv = tuple[_Fig, Decimal, str, Decimal]  # a figure, its value and unit as printed, the value converted


def _common(figs: list[_Fig]) -> tuple[list[Decimal], str, list[_Conv]] | str:
    """The values in the finest of their units, that unit and the conversions; or why not."""
    vals = [f.value for f in figs]
    if len({v[1] for v in vals}) > 1:
        return "单位不一致（" + "、".join(v[3] for v in vals) + "），未计算"
    scale = min(v[2] for v in vals)
    unit = next(v[3] for v in vals if v[2] == scale)
    out = [v[0] * v[2] / scale for v in vals]
    return out, unit, [(f, v[0], v[3], o) for f, v, o in zip(figs, vals, out) if v[2] != scale]


class _Work:
    """One question: its terms, the figures it may use and the citations made so far."""

    def __init__(self, q: str, catalog: Catalog):
        self.q, self.catalog, self.citations = q, catalog, []
        self.computations: list[Computation] = []
        self.terms = self.terms_of(q)
        self.rate, self.plan = bool(_WANTS_RATE.search(q)), bool(_ASKS_PLAN.search(q))
        self.periods = periods(re.sub(r"全年|年度|年内", "", q))  # 全年目标 names the target, not a period

    def terms_of(self, text: str) -> list[str]:
        return [t for t in content_terms(text, self.catalog) if t not in _MEASURE_WORDS and t not in GENERIC_WORDS
                and t not in _NOISE and not _ANY_CUE.search(t)]

    def figures(self, doc_id: str, kinds: tuple[str, ...], towns: bool = False) -> list[_Fig]:
        """Figures whose span still reads the same in the text, of the period asked; a town's
        own figure (阴平镇's line in a district's bulletin) only when ``towns``."""
        rec, text = self.catalog.records[doc_id], self.catalog.texts[doc_id]
        out = [_Fig(doc_id, t, it.item_id, "", it.task.text) for it in rec.items for t in it.targets]
        out += [_Fig(doc_id, g, it.item_id, p.reporting_unit.name if p.reporting_unit else "", p.text.text)
                for it in rec.items for p in it.progress for g in p.indicators]
        return [f for f in out if f.ind.kind in kinds and f.ind.value is not None and f.ind.unit
                and text[f.ind.evidence.start:f.ind.evidence.end] == f.ind.evidence.text
                and not any(w in f.name and w not in self.q for w in _OTHER_MEASURE)
                and (towns or not f.who.endswith(_TOWN_ENDS)) and self._period_ok(f)]

    def _period_ok(self, f: _Fig) -> bool:
        stated = periods(f.context) if f.ind.kind != "target" and self.periods else set()
        return not stated or bool(stated & self.periods)

    def best(self, figs: list[_Fig], text: str) -> _Fig | None:
        """The figure whose name holds most of ``text``'s terms (then of the question's, the
        kind of number asked, the longest run shared, the shortest name); None under half."""
        terms = self.terms_of(text) if text != self.q else self.terms

        def key(f: _Fig) -> tuple:
            return (sum(len(t) for t in terms if t in f.name), sum(len(t) for t in self.terms if t in f.name),
                    (f.value[1] == "增速") == self.rate, _lcs(f.name, text), -len(f.name))
        scored = [(key(f), f) for f in figs]
        scored = [(k, f) for k, f in scored if k[0] >= 2 and 2 * k[0] >= sum(map(len, terms))]
        return max(scored, key=lambda x: x[0])[1] if scored else None

    def cite(self, f: _Fig) -> int:
        """The figure's citation number, citing it once at its span."""
        s, rec = f.ind.evidence, self.catalog.records[f.doc_id]
        n = next((c.n for c in self.citations if (c.doc_id, c.start, c.end) == (f.doc_id, s.start, s.end)), None)
        if n is None:
            n = len(self.citations) + 1
            self.citations.append(Citation(n=n, doc_id=f.doc_id, source_file=rec.source_file, start=s.start,
                                           end=s.end, quote=self.catalog.texts[f.doc_id][s.start:s.end]))
        return n

    def say(self, f: _Fig, where: bool = False) -> str:
        """The figure's words as quoted, cited once at its span."""
        n = self.cite(f)
        return f"{self.label(f.doc_id) if where else ''}“{compact(normalize(f.ind.evidence.text)[0].text)}”[{n}]"

    def computed(self, op: ComputationOp, figs: Sequence[_Fig], operands: Sequence[Decimal], result: Decimal,
                 unit: str, text: str | None = None) -> str:
        """The formula's text, its computation recorded with the figures' citations (the eval checks it)."""
        text = formula(op, operands, result, unit) if text is None else text
        self.computations.append(Computation(op=op, inputs=[self.cite(f) for f in figs],
                                             operands=[float(o) for o in operands], result=float(result),
                                             unit=unit, formula=text))
        return text

    def notes(self, convs: list[_Conv], unit: str) -> str:
        """The unit conversions, each written and recorded (10.1亿元 = 101000万元)."""
        return "".join("；" + self.computed("conversion", [f], [v], o, unit, formula("conversion", [v], o, unit, u))
                       for f, v, u, o in convs)

    def label(self, doc_id: str) -> str:
        return self.catalog.docs[doc_id].label


def _gap(w: _Work, doc_id: str, share: bool) -> str | None:
    """A target against what was done for it, within one item of one document."""
    t = w.best(w.figures(doc_id, ("target",)), w.q)
    if t is None:
        a = w.best(w.figures(doc_id, ("actual",)), w.q)
        return None if a is None else f"完成{w.say(a)}；未找到：{w.label(doc_id)}中{a.ind.name}的目标。"
    done = [f for f in w.figures(doc_id, ("actual", "forecast")) if f.item == t.item and f.value[1] == t.value[1]
            and _similar(t.name, f.name) >= 0.5  # a 余额 (stock) does not answer a 新增 target; its 增加 does
            and not ("余额" in f.name and "余额" not in t.name and not (f.ind.change and f.ind.change.unit == f.ind.unit))]
    if not done:
        return f"目标{w.say(t)}；未找到：{w.label(doc_id)}中{t.ind.name}的完成数。"
    a = max(done, key=lambda f: (_similar(t.name, f.name), f.ind.kind == "actual"))
    (tv, av), unit, convs = _common([t, a])  # type: ignore[misc]
    if tv <= 0 or t.ind.qualifier == "at_most" or (share and t.value[1] in ("增速", "%", "个百分点")):
        return None  # a ceiling, a fall or a rate: no share or gap to compute; the text may state one
    head = f"目标{w.say(t)}，{'完成' if a.ind.kind == 'actual' else '预计完成'}{w.say(a)}"
    if share:
        done = w.computed("share", [a, t], [av, tv], _share(av, tv), "%")
        return f"{head}；完成比例 = {done}{w.notes(convs, unit)}。"
    u = "个百分点" if unit == "%" else unit
    if av >= tv:
        return f"{head}；已超出目标：超出 = {w.computed('difference', [a, t], [av, tv], av - tv, u)}{w.notes(convs, unit)}。"
    least = "（目标为“以上”，至少还差这么多）" if t.ind.qualifier == "at_least" else ""
    return f"{head}；还差 = {w.computed('difference', [t, a], [tv, av], tv - av, u)}{least}{w.notes(convs, unit)}。"


def _change(w: _Work, doc_id: str) -> str | None:
    """From a figure to a later one of the same sentence (由849亿元……达到1187.9亿元)."""
    figs = [f for f in w.figures(doc_id, _ACTUAL) if re.search(r"\d", f.ind.evidence.text)]
    text = w.catalog.texts[doc_id]

    def num(f: _Fig) -> tuple[int, int]:
        m = list(re.finditer(r"\d+(?:\.\d+)?", f.ind.evidence.text))[-1]
        return f.ind.evidence.start + m.start(), f.ind.evidence.start + m.end()
    pairs = [(f, g) for i, f in enumerate(figs) if _FROM.search(text[max(0, num(f)[0] - 3):num(f)[0]])
             for g in figs[i + 1:i + 5] if g.value[1] == f.value[1] and 0 < num(g)[0] - num(f)[1] <= 40
             and not re.search(r"[。；;]", text[num(f)[1]:num(g)[0]]) and _TO.search(text[num(f)[1]:num(g)[0]])]
    f = w.best([f for f, _ in pairs], w.q)
    if f is None:
        return None
    g = next(g for x, g in pairs if x is f)
    (fv, gv), unit, convs = _common([f, g])  # type: ignore[misc]
    word, (x, a), (y, b) = ("增加", (g, gv), (f, fv)) if gv >= fv else ("减少", (f, fv), (g, gv))
    said = f"由{w.say(f)}到{w.say(g)}"
    return f"{said}：{word} = {w.computed('difference', [x, y], [a, b], a - b, unit)}{w.notes(convs, unit)}。"


def _combine(w: _Work, mode: str, figs: list[_Fig], labels: list[str]) -> str:
    """The sum, difference or ranking of the figures, once their units are one."""
    got = _common(figs)
    if isinstance(got, str):
        return got + "。"
    vals, unit, convs = got
    if mode == "sum":
        return f"合计 = {w.computed('sum', figs, vals, sum(vals, Decimal(0)), unit)}{w.notes(convs, unit)}。"
    low, hi, lo = bool(_LOW.search(w.q)), max(vals), min(vals)
    if mode == "diff" or len(vals) == 2:
        if hi == lo:
            return f"两者相同（{_n(hi)}{unit}）{w.notes(convs, unit)}。"
        which = f"{labels[vals.index(lo)]}较低" if low and mode == "rank" else f"{labels[vals.index(hi)]}较高"
        i, j = vals.index(hi), vals.index(lo)
        diff = w.computed("difference", [figs[i], figs[j]], [hi, lo], hi - lo, "个百分点" if unit == "%" else unit)
        return f"相差 = {diff}，{which}{w.notes(convs, unit)}。"
    order, ranked = ranking(labels, vals, low)
    first = vals[order[0]]
    top = [labels[i] for i in order if vals[i] == first]
    w.computed("rank", [figs[i] for i in order], [vals[i] for i in order], first, unit, ranked)
    return f"{'、'.join(top)}{'最低' if low else '最高'}（{_n(first)}{unit}）；排序：{ranked}（{unit}）{w.notes(convs, unit)}。"


def _within(w: _Work, mode: str, doc_id: str, bare: str) -> str | None:
    """In one document: the parts the question names (diff, sum), or the best matching
    indicator's line of each reporting unit (rank)."""
    figs = w.figures(doc_id, ("target",) if w.plan else _ACTUAL, towns=mode == "rank")
    if mode == "rank":
        top = w.best(figs, w.q)
        if top is None:
            return None
        held = sum(len(t) for t in w.terms if t in top.name)
        chosen: dict[str, _Fig] = {}
        for f in figs:
            if (f.value[1] == top.value[1] and sum(len(t) for t in w.terms if t in f.name) == held
                    and f.who and top.who  # one indicator's lines, not an item's mixed figures
                    and (not re.search(r"镇|街", bare) or f.who.endswith(_TOWN_ENDS))):
                chosen.setdefault(f.who, f)
        labels, picked = list(chosen), list(chosen.values())
        if len(picked) < 2:
            return None
    else:
        parts = [x for x in _SPLIT.split(bare) if w.terms_of(x)]
        found = [w.best(figs, x) for x in parts]
        if len(parts) < 2 or None in found or len({id(f) for f in found}) < len(found):
            return _gap(w, doc_id, False) if mode == "diff" and w.plan else None
        picked = found[:2] if mode == "diff" else found  # type: ignore[assignment]
        labels = [f.ind.name for f in picked]
    said = "，".join(f"{f.who or (f.ind.name + '：' if len(numbers_in(f.ind.evidence.text)) > 1 else '')}{w.say(f)}"
                    for f in picked)
    return f"{said}；{_combine(w, mode, picked, labels)}"


def _across(w: _Work, mode: str, doc_ids: list[str]) -> tuple[str, list[str]] | None:
    """One figure per named place (the place's own, not a town's), then their combination."""
    found = {d: f for d in doc_ids if (f := w.best(w.figures(d, ("target",) if w.plan else _ACTUAL), w.q))}
    if not found:
        return None
    what = "、".join(sorted(w.periods)) + next(iter(found.values())).ind.name + ("的目标" if w.plan else "的数字")
    gaps = [f"{w.label(d)}中{what}" for d in doc_ids if d not in found]
    said = "；".join(w.say(f, where=True) for f in found.values())
    if len(found) < 2:
        return said + "。", gaps
    years = sorted({f"{w.catalog.docs[d].period}年" for d in found if w.catalog.docs[d].period})
    note = f"注意：各文件年份不同（{'、'.join(years)}）。" if len(years) > 1 else ""
    labels = [w.catalog.docs[d].place or w.label(d) for d in found]
    return f"{said}。{_combine(w, mode, list(found.values()), labels)}{note}", gaps


def arithmetic_answer(question: str, p: Plan, catalog: Catalog) -> Answer | None:
    """A computed answer with its formula and every input cited; None when the question asks
    for no arithmetic (or also asks who is responsible) or the records hold none of its inputs."""
    q = simplify(p.standalone).replace("规模以上", "规上")
    mode = next((m for m in _MODES if _CUES[m].search(q)), None)
    doc_ids = [d for d in (p.doc_ids or (list(catalog.records) if len(catalog.records) == 1 else []))
               if d in catalog.records and d in catalog.texts]
    if mode is None or not doc_ids or _ASKS_WHO.search(q):
        return None
    w = _Work(q, catalog)
    if not w.terms:
        return None
    lines, gaps = [], []
    if mode in ("gap", "share", "change") or len(doc_ids) == 1:
        bare = q
        for name, _, _ in catalog.place_names:
            bare = bare.replace(name, " ")
        for d in doc_ids:
            line = _gap(w, d, mode == "share") if mode in ("gap", "share") else (
                _change(w, d) if mode == "change" else _within(w, mode, d, bare))
            if line is not None:
                lines.append(f"{w.label(d)}：{line}")
    elif (got := _across(w, mode, doc_ids)) is not None:
        lines, gaps = [got[0]], got[1]
    if not w.citations:
        return None
    text = "按结构化记录计算：" + "\n".join(lines) + (f"\n未找到：{'；'.join(gaps)}。" if gaps else "")
    return Answer(question=question, answer=text, refused=False, citations=w.citations, computations=w.computations)


__all__ = ["arithmetic_answer"]
