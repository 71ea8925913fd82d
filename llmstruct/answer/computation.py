"""Numbers code derived for an answer, and the check that lets them count as supported.

A number of an answer is quoted, or derived by code from quoted figures. Each derived number
comes with a :class:`Computation`; the check finds its formula in the answer (re-rendered from
the operands and the result, so the record and the text cannot disagree), finds every operand
in the quote of the citation it names (or as the result of a stated conversion of that quote's
figure) and recomputes the result in exact decimals, rounding as the answer rounds. Formatting
and rounding live here so that what arithmetic writes and what the check expects are one code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from llmstruct.answer.terms import NUMBER, compact, numbers_in
from llmstruct.schema import Answer, Computation
from llmstruct.text.normalize import normalize

# unit -> (what it measures, its scale): 1.31亿元 = 13100万元; 万人 and 人 are people, 万人次 visits
SCALE = {"万亿元": ("元", 10**12), "亿元": ("元", 10**8), "万元": ("元", 10**4), "亿美元": ("美元", 10**8),
         "万美元": ("美元", 10**4), "万人": ("人", 10**4), "万人次": ("人次", 10**4), "万户": ("户", 10**4),
         "万亩": ("亩", 10**4), "万平方米": ("平方米", 10**4), "万吨": ("吨", 10**4), "万千瓦": ("千瓦", 10**4)}
_SIGNS = {"difference": " − ", "sum": " + ", "share": " ÷ "}
_SIGNED = re.compile(r"\((-\d+(?:\.\d+)?)\)|(\d+(?:\.\d+)?)")


def fmt(d: Decimal) -> str:
    """A number as answers print it: no trailing zeros, a negative one in brackets (5 − (-4.7))."""
    s = format(d.normalize(), "f")
    return f"({s})" if d < 0 else s


def exact(x: float | int | Decimal) -> Decimal:
    """The number as printed, exactly: a float by its shortest repr (0.07, not 0.0700000000000000067)."""
    return x if isinstance(x, Decimal) else Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def share(part: Decimal, whole: Decimal) -> Decimal:
    """part ÷ whole in percent, to 0.1 rounded half up (1090.2 ÷ 2000 = 54.5%)."""
    return (part / whole * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)


def outcome(op: str, operands: Sequence[Decimal]) -> Decimal | None:
    """What ``op`` makes of the operands; None when it takes other operands (or a zero whole)."""
    if op == "difference" and len(operands) == 2:
        return operands[0] - operands[1]
    if op == "sum" and len(operands) >= 2:
        return sum(operands, Decimal(0))
    if op == "share" and len(operands) == 2 and operands[1] != 0:
        return share(operands[0], operands[1])
    return None


def formula(op: str, operands: Sequence[Decimal], result: Decimal, unit: str, from_unit: str = "") -> str:
    """The formula text of a difference, sum, share or conversion (10.1亿元 = 101000万元)."""
    if op == "conversion":
        return f"{fmt(operands[0])}{from_unit} = {fmt(result)}{unit}"
    return _SIGNS[op].join(fmt(o) for o in operands) + f" = {fmt(result)}{unit}"


def ranking(labels: Sequence[str], values: Sequence[Decimal], low: bool) -> tuple[list[int], str]:
    """The indices highest first (lowest first when ``low``) and the ranking's text
    (青岛市 8 = 历城区 8 > 金乡县 7)."""
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=not low)
    text = f"{labels[order[0]]} {fmt(values[order[0]])}" + "".join(
        f"{' = ' if values[i] == values[j] else (' < ' if low else ' > ')}{labels[i]} {fmt(values[i])}"
        for j, i in zip(order, order[1:]))
    return order, text


def _value(s: str) -> Decimal:
    m = _SIGNED.fullmatch(s)
    return Decimal(m.group(1) or m.group(2)) if m else Decimal("NaN")


def _rank_problems(c: Computation, ops: list[Decimal], result: Decimal) -> list[str]:
    """The ranking's text reads the operands in order, its signs agree with them, one way."""
    parts = re.split(r" ([=<>]) ", c.formula)
    segs, signs = parts[::2], parts[1::2]
    vals = [_value(m.group(1)) if (m := re.fullmatch(r"\S.*? (\(-[\d.]+\)|[\d.]+)", s)) else None for s in segs]
    if vals != ops:
        return ["the ranking does not read the operands in order"]
    ok = {"=": lambda a, b: a == b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    if len(set(signs) - {"="}) > 1 or not all(ok[s](a, b) for s, a, b in zip(signs, ops, ops[1:])):
        return ["the ranking's order disagrees with its values"]
    return [] if result == ops[0] else [f"result {fmt(result)} is not the first of the ranking ({fmt(ops[0])})"]


def _quoted_with_unit(quote: str, value: Decimal, unit: str) -> bool:
    """``quote`` writes ``value`` followed by ``unit`` itself (万人 is not 万人次)."""
    t = re.sub(r"(?<=\d)[,，](?=\d{3})", "", compact(normalize(quote)[0].text))
    for m in NUMBER.finditer(t):
        if Decimal(m.group(0)) == abs(value):
            here = [u for u in (*SCALE, unit) if t.startswith(u, m.end())]
            if here and max(here, key=len) == unit:
                return True
    return False


def _conversion_problems(c: Computation, a: Decimal, result: Decimal, quote: str) -> list[str]:
    base, to = SCALE.get(c.unit, (c.unit, 1))
    for u, (b, scale) in SCALE.items():
        if b == base and u != c.unit and c.formula == formula("conversion", [a], result, c.unit, u):
            if a * scale / to != result:
                return [f"{fmt(a)}{u} is {fmt(a * scale / to)}{c.unit}, not {fmt(result)}"]
            return [] if _quoted_with_unit(quote, a, u) else [f"[{c.inputs[0]}] does not quote {fmt(abs(a))}{u}"]
    return [f"the formula is no conversion to {c.unit} of {fmt(a)}"]


def _problems(c: Computation, answer: Answer, quotes: dict[int, str], converted: set[tuple[int, Decimal]]) -> list[str]:
    if len(c.inputs) != len(c.operands):
        return [f"{len(c.inputs)} inputs for {len(c.operands)} operands"]
    if missing := [n for n in c.inputs if n not in quotes]:
        return [f"no citation {missing}"]
    ops, result = [exact(o) for o in c.operands], exact(c.result)
    if not all(x.is_finite() for x in (*ops, result)):
        return ["an operand or the result is no number"]
    out = [] if c.formula and c.formula in answer.answer else ["the formula is not in the answer"]
    if c.op == "conversion":
        return out + (_conversion_problems(c, ops[0], result, quotes[c.inputs[0]]) if len(ops) == 1
                      else ["a conversion takes one operand"])
    if c.op == "rank":
        out += _rank_problems(c, ops, result) if len(ops) >= 2 else ["a ranking takes two operands or more"]
    elif (want := outcome(c.op, ops)) is None:
        out.append(f"{c.op} cannot take {len(ops)} operands as given")
    elif want != result:
        out.append(f"{fmt(want)} recomputed, {fmt(result)} written")
    elif c.formula != formula(c.op, ops, result, c.unit):
        out.append("the formula does not read the operands, the result and the unit")
    held = {n: {Decimal(x) for x in numbers_in(q)} for n, q in quotes.items()}
    out += [f"[{n}] does not quote {fmt(abs(v))}" for n, v in zip(c.inputs, ops)
            if abs(v) not in held[n] and (n, v) not in converted]
    return out


def verify(answer: Answer) -> list[tuple[Computation, list[str]]]:
    """Each computation of the answer with its problems (none: it checks). An operand may be
    the result of a conversion of the same citation's figure that checks (1.31亿元 = 13100万元)."""
    quotes = {c.n: c.quote for c in answer.citations}
    found: dict[int, list[str]] = {}
    for i, c in enumerate(answer.computations):
        if c.op == "conversion":
            found[i] = _problems(c, answer, quotes, set())
    converted = {(c.inputs[0], exact(c.result)) for i, c in enumerate(answer.computations)
                 if c.op == "conversion" and not found[i]}
    for i, c in enumerate(answer.computations):
        if c.op != "conversion":
            found[i] = _problems(c, answer, quotes, converted)
    return [(c, found[i]) for i, c in enumerate(answer.computations)]


def check_computations(answer: Answer) -> list[str]:
    """Every problem of the answer's computations, each after its formula; empty when all check."""
    return [f"{c.formula}: {p}" for c, problems in verify(answer) for p in problems]


__all__ = ["SCALE", "check_computations", "exact", "fmt", "formula", "outcome", "ranking", "share", "verify"]
