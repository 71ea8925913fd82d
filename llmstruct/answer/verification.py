"""Code checks every statement: its quote is aligned to the file, its numbers are in the quote,
and its evidence fits the question's number, unit, period and kind of figure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.passages import Passage
from llmstruct.answer.refusal import Refusal, refusal
from llmstruct.answer.terms import (
    _ASKED_UNIT,
    _ASKS_ACTUAL,
    _ASKS_PLAN,
    _ITEM_NO,
    _MEASURE_WORDS,
    ASKS_NUMBER,
    GENERIC_WORDS,
    QUOTED,
    compact,
    content_terms,
    numbers_in,
    simplify,
)
from llmstruct.schema import Citation
from llmstruct.text.grounding import align
from llmstruct.text.normalize import normalize
from llmstruct.vocab import VOCAB, words_pattern

RELEVANCE_SHARE = 0.6

REPAIR_TRIES = 2

_PERIODS = VOCAB.words("period_words")

_CLAIMS_DONE = words_pattern(VOCAB.words("claim_done_words"))
_NOT_DONE = words_pattern(VOCAB.words("not_done_words"))
_NEGATION = words_pattern(VOCAB.words("negation_words"))
_RISE = words_pattern(VOCAB.words("rise_words"))
_FALL = words_pattern(VOCAB.words("fall_words"))

_ASKS_TARGET = re.compile(r"目标|计划|力争")

_MONTH_RANGE = re.compile(r"(\d{1,2})\s*[-—－~至到]\s*(\d{1,2})\s*月")


@dataclass(frozen=True)
class SimpleStatement:
    """A statement made by code (the repair that quotes the best sentence)."""

    quote: str
    text: str
    cites: list[int]


@dataclass
class Verified:
    """A statement that passed verification, with its citations (passage numbers)."""

    text: str
    citations: list[Citation]
    repaired: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AnswerGroup:
    """What statement i of a grouped answer answers: a place of a comparison or a part of
    the question. ``passages``: indices it may cite; ``ranked``: its candidate sentences;
    ``question``: what its evidence must fit; ``label``: its heading in the prompt;
    ``line_prefix``: put before its verified line (a comparison's place name); ``gap``: what
    the answer names as not found when the group has no verified statement (a part's topic)."""

    passages: list[int]
    ranked: list[tuple[float, str]]
    question: str
    label: str
    line_prefix: str = ""
    gap: str = ""


@dataclass
class VerifyReport:
    statements: int = 0
    kept: int = 0
    dropped_quote: int = 0
    cite_repaired: int = 0
    text_repaired: int = 0
    text_conflicts: int = 0  # statements whose words the quote contradicts, shown as the quote
    dropped_irrelevant: int = 0
    dropped_unfit: int = 0
    best_sentence_used: int = 0
    dropped_place: int = 0
    gaps: list[str] = field(default_factory=list)
    refusal: Refusal | None = None


def locate_quote(quote: str, passage: Passage) -> tuple[int, int, str] | None:
    """Original-file offsets and text of ``quote`` inside ``passage``, or None."""
    q = quote.strip().strip("「」“”\"'")
    if len(compact(q)) < 2:
        return None
    hit = align(q, passage.clean, 0, len(passage.clean.text))
    if hit is None or (hit.alignment == "fuzzy" and hit.ratio < 0.9):
        return None
    s = hit.span
    start, end = passage.hit.start + s.start, passage.hit.start + s.end
    return start, end, s.text


def verify_statement(stmt: Any, passages: Sequence[Passage], report: VerifyReport, asks_number: bool) -> Verified | None:
    """Check one statement; repair what can be repaired, else None."""
    report.statements += 1
    cites = list(dict.fromkeys(int(c) for c in stmt.cites))
    placed: list[tuple[int, tuple[int, int, str]]] = []
    for n in cites:
        if 1 <= n <= len(passages):
            loc = locate_quote(stmt.quote, passages[n - 1])
            if loc:
                placed.append((n, loc))
    repaired: list[str] = []
    if not placed:
        for n, p in enumerate(passages, start=1):
            loc = locate_quote(stmt.quote, p)
            if loc:
                placed.append((n, loc))
                repaired.append("cite")
                report.cite_repaired += 1
                break
    if not placed:
        report.dropped_quote += 1
        return None
    evidence = "".join(normalize(t)[0].text for _, (_, _, t) in placed)
    have = set(numbers_in(evidence))
    text = stmt.text.strip()
    text_numbers = numbers_in(text)
    conflict = statement_conflict(text, evidence)
    if conflict:
        report.text_conflicts += 1
    if (conflict or any(x not in have for x in text_numbers) or not text
            or (asks_number and not text_numbers and have)):
        text = compact(Passage.of(passages[placed[0][0] - 1].hit.model_copy(
            update={"text": placed[0][1][2], "start": placed[0][1][0], "end": placed[0][1][1]})).text)
        repaired.append("text")
        report.text_repaired += 1
    citations = []
    for n, (start, end, quote) in placed:
        h = passages[n - 1].hit
        citations.append(Citation(n=n, doc_id=h.doc_id, source_file=h.source_file, start=start, end=end, quote=quote))
    report.kept += 1
    return Verified(text=text, citations=citations, repaired=repaired)


def statement_conflict(text: str, quote: str) -> str:
    """Why the statement's own words disagree with its quote ("" when they do not): it claims
    completion where the quote says not done, negates what the quote does not, or states a
    direction (增长/下降) the quote does not. Numbers are checked apart."""
    if _CLAIMS_DONE.search(text) and _NOT_DONE.search(quote) and not _CLAIMS_DONE.search(quote):
        return "completion"
    if _NEGATION.search(text) and not (_NEGATION.search(quote) or _NOT_DONE.search(quote)):
        return "negation"
    if _FALL.search(text) and not _FALL.search(quote) and _RISE.search(quote):
        return "direction"
    if _RISE.search(text) and not _RISE.search(quote) and _FALL.search(quote):
        return "direction"
    return ""


def periods(text: str) -> set[str]:
    t = simplify(text)
    found = {p.removeprefix("第") for p in _PERIODS if p in t}
    found |= {f"{a}-{b}月" for a, b in _MONTH_RANGE.findall(t)}
    return found


def evidence_fits(question: str, verified: Sequence[Verified], passages: Sequence[Passage],
                  titles: Sequence[str] = (), catalog: Catalog | None = None) -> str:
    """Why the verified evidence does not answer the question (None when it does).

    Checks that need no model: a question asking for a number needs a number in a quote;
    a unit asked for (多少亿元) must appear with a number; a period the question names
    (全年, 一季度, 1-9月) must be the period of a cited passage, not another one. With the
    catalog, the figures a quote states must be of the kind asked: a target does not answer
    what was achieved (上半年完成投资多少 vs 完成投资238亿元以上), nor an achievement a target.
    """
    q = simplify(question)
    quotes = "".join(compact(normalize(c.quote)[0].text) for v in verified for c in v.citations)
    cited = {c.n for v in verified for c in v.citations}
    context = "".join(passages[n - 1].text + (titles[n - 1] if n - 1 < len(titles) else "") for n in cited)
    asks_number = bool(ASKS_NUMBER.search(q))
    if asks_number and not numbers_in(quotes):
        return refusal("no_number")
    m = _ASKED_UNIT.search(q)
    if m and not re.search(r"\d\s*" + re.escape(m.group(1)), quotes):
        return refusal("wrong_unit", unit=m.group(1))
    if asks_number and catalog is not None:
        kinds = {f.kind for v in verified for c in v.citations for f in catalog.figures_in(c.doc_id, c.start, c.end)}
        if kinds and kinds <= {"target"} and not _ASKS_PLAN.search(q):
            return refusal("target_not_actual")
        if kinds and kinds <= {"actual", "baseline"} and _ASKS_PLAN.search(q) and not _ASKS_ACTUAL.search(q):
            return refusal("actual_not_target")
        # what is expected (预计上半年增长30%左右) is not the target asked (目标是什么) either
        if (kinds and kinds <= {"actual", "baseline", "forecast"} and "forecast" in kinds and _ASKS_TARGET.search(q)
                and not _ASKS_ACTUAL.search(q)):
            return refusal("actual_not_target")
        # what the quoted figures are about (their names in the records) must be what is
        # asked: 进出口总额 is not answered by 社会消费品零售总额; a named item is its own subject
        names = [simplify(f.name) for v in verified for c in v.citations
                 for f in catalog.figures_in(c.doc_id, c.start, c.end) if f.name]
        subject = [t for t in content_terms(q, catalog) if t not in GENERIC_WORDS and t not in _MEASURE_WORDS]
        if names and subject and not (_ITEM_NO.search(q) or QUOTED.search(q)) and not any(
                t in n or n in t for t in subject for n in names if len(n) >= 2):
            return refusal("wrong_subject")
    asked = periods(q)
    if asked:
        stated = periods(context)
        if not asked & stated:
            return refusal("wrong_period")
    return None
