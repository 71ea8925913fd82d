"""From the model's output to the final answer: parse it against its schema, verify each
statement (repairing what can be), and compose the text with numbered citations; also the
drafts shown while streaming."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import RootModel, ValidationError

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.passages import Passage
from llmstruct.answer.refusal import REFUSAL, Refusal, refusal
from llmstruct.answer.terms import ASKS_NUMBER, compact, simplify
from llmstruct.answer.verification import (
    RELEVANCE_SHARE,
    REPAIR_TRIES,
    AnswerGroup,
    SimpleStatement,
    Verified,
    VerifyReport,
    evidence_fits,
    locate_quote,
    verify_statement,
)
from llmstruct.schema import Answer, Citation, Hit
from llmstruct.vocab import VOCAB


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: a draft to show, or the final verified answer."""

    kind: Literal["status", "draft", "final"]
    text: str = ""
    answer: Answer | None = None
    passages: tuple[Hit, ...] = ()
    seconds: float = 0.0
    refusal: Refusal | None = None
    report: VerifyReport | None = None

    @property
    def reason(self) -> str:
        """Why the answer was refused, in Chinese ('' when it was not)."""
        return self.refusal.message if self.refusal is not None else ""


def refused(question: str, why: Refusal) -> Answer:
    return Answer(question=question, answer=REFUSAL, refused=True, refusal=why.code)


def gap_line(topic: str = "", place: str = "") -> str:
    """The line naming what was asked and not found: a part's topic, or a place."""
    msgs = VOCAB.raw["gap_messages"]
    return msgs["place"].format(place=place) if place else msgs["part"].format(topic=topic)


def compose(question: str, verified: Sequence[Verified], gaps: Sequence[str] = ()) -> Answer:
    """Final answer text: each statement followed by its citation marks, numbered 1, 2, ...
    in order of first use (the same quote cited twice keeps one number); then one line per
    part or place asked that nothing verified answers (``gaps``)."""
    lines: list[str] = []
    cites: list[Citation] = []
    number: dict[tuple[str, int, int], int] = {}
    for v in verified:
        marks = []
        for c in v.citations:
            key = (c.source_file, c.start, c.end)
            if key not in number:
                number[key] = len(cites) + 1
                cites.append(c.model_copy(update={"n": number[key]}))
            marks.append(f"[{number[key]}]")
        lines.append(f"{v.text.rstrip('。；;')}{''.join(dict.fromkeys(marks))}。")
    lines += [f"{g}。" for g in dict.fromkeys(gaps)]
    return Answer(question=question, answer="\n".join(lines), refused=False, citations=cites)


_FIELD = re.compile(r'"(quote|text)":"((?:[^"\\]|\\.)*)')


def draft_text(partial: str) -> str:
    """What to show while generating: each statement's quote as it is copied (evidence), in
    「」; statement texts appear only once verified."""
    quotes = [m.group(2) for m in _FIELD.finditer(partial) if m.group(1) == "quote"]
    shown = []
    for q in quotes:
        try:
            q = json.loads(f'"{q}"')
        except json.JSONDecodeError:
            q = q.replace('\\"', '"')
        shown.append(f"「{q}」")
    return "\n".join(shown)


def _doc_names(verified: Sequence[Verified], catalog: Catalog) -> dict[str, str]:
    """A short name per cited document (place and year; the full label when two cited
    documents share place and year)."""
    docs = {v.citations[0].doc_id for v in verified if v.citations}
    short = {d: catalog.docs[d].label.split("·")[0] if d in catalog.docs else "" for d in docs}
    return {d: (catalog.docs[d].label if list(short.values()).count(n) > 1 else n) for d, n in short.items()}


def answer_from_output(question: str, standalone: str, raw: str, passages: Sequence[Passage], catalog: Catalog,
                       report: VerifyReport, schema: type[RootModel], ranked: Sequence[tuple[float, str]] = (),
                       groups: Sequence[AnswerGroup] = (), docs: Collection[str] | None = None,
                       places: Sequence[tuple[str, Collection[str]]] = (), gaps: Sequence[str] = ()) -> Answer:
    """Parse the model output (against the schema it was generated under) and keep only
    what the passages support.

    With ``ranked`` (relevance of the offered sentences), a statement quoting a sentence
    far less relevant than the best one is dropped, and an answer left with nothing is
    repaired with the best sentence; the checks of :func:`evidence_fits` then decide.
    With ``groups`` (statement i answering group i: a place, or a part of the question)
    each statement is measured against its own group's best sentence and checked against
    its group's question, and may cite only its group's passages; a group left with no
    statement is named as not found (its ``gap``).

    ``docs``: the documents of the places the question names (a statement citing any other
    document is dropped); ``places``: (place, its documents) for each place of a question
    about several, each answered by a line led by its name or named as not found; ``gaps``:
    parts of the question that had no candidate sentence at all, named as not found. With
    nothing verified the answer is refused, whatever is named.
    """
    try:
        out = schema.model_validate_json(raw).root
    except ValidationError:
        report.refusal = refusal("truncated")
        return refused(question, report.refusal)
    asks_number = bool(ASKS_NUMBER.search(simplify(standalone)))
    if out.refuse:
        report.refusal = refusal("model_refused")
        return refused(question, report.refusal)
    titles = [catalog.docs[ps.hit.doc_id].title if ps.hit.doc_id in catalog.docs else "" for ps in passages]
    allowed = set(docs) if docs else None
    asked_places = [pl for pl, _ in places]

    def check(st, g: AnswerGroup, rep: VerifyReport, needs_number: bool) -> tuple[Verified | None, Refusal | None]:
        """A verified statement, or None with why it does not fit (None when its quote or
        numbers failed verification itself)."""
        v = verify_statement(st, passages, rep, needs_number)
        if v is None:
            return None, None
        if any(c.n - 1 not in g.passages or (allowed is not None and c.doc_id not in allowed)
               for c in v.citations):  # a quote from another place (or another group's document)
            rep.dropped_place += 1
            return None, None
        reason = evidence_fits(g.question, [v], passages, titles, catalog)
        if reason:
            return None, reason
        doc = catalog.docs.get(v.citations[0].doc_id)
        if doc and asked_places and any(pl in v.text for pl in asked_places if pl != doc.place):
            v.text = compact(v.citations[0].quote)  # the model's text names another place asked: say the quote
        if g.line_prefix and not v.text.startswith(g.line_prefix):  # say which place a line is about
            v.text = f"{g.line_prefix}：{v.text}"
        return v, None

    def repair(g: AnswerGroup, needs_number: bool, used: set[str]) -> tuple[Verified | None, Refusal | None]:
        """The group's best-ranked sentences, as code-made statements, until one passes."""
        why = None
        mine = [k for k in g.passages if allowed is None or passages[k].hit.doc_id in allowed]
        for _, top in [x for x in g.ranked if x[1] not in used][:REPAIR_TRIES]:
            n = next((k + 1 for k in mine if locate_quote(top, passages[k])), None)
            v, reason = check(SimpleStatement(top, top, [n]), g, VerifyReport(), needs_number) if n else (None, None)
            if v is not None:
                report.best_sentence_used += 1
                used.add(top)
                return v, None
            why = why or reason or refusal("nothing_verified")
        return None, why

    verified: list[Verified] = []
    missing: list[str] = [gap_line(topic=t) for t in gaps]
    why: Refusal | None = None
    if groups:  # statement i answers group i; a group whose statement fails gets its best sentence
        used: set[str] = set()
        statements = list(out.statements) + [None] * (len(groups) - len(out.statements))
        for st, g in zip(statements, groups):
            needs_number = bool(ASKS_NUMBER.search(simplify(g.question)))
            relevance = {c: r for r, c in g.ranked}
            best = max(relevance.values(), default=0.0)
            v, reason = None, None
            if st is None:
                pass
            elif st.quote in used or relevance.get(st.quote, best) < RELEVANCE_SHARE * best:
                report.dropped_irrelevant += 1
            else:
                v, reason = check(st, g, report, needs_number)
                if reason:
                    report.dropped_unfit += 1
                if v is not None:
                    used.add(st.quote)
            if v is None:
                v, again = repair(g, needs_number, used)
                why = why or reason or again
            if v is not None:
                verified.append(v)
            elif g.gap:
                missing.append(gap_line(topic=g.gap))
    else:
        whole = AnswerGroup(list(range(len(passages))), list(ranked), standalone, "")
        relevance = {c: r for r, c in ranked}
        best = max(relevance.values(), default=0.0)
        statements = [st for st in out.statements if relevance.get(st.quote, best) >= RELEVANCE_SHARE * best]
        report.dropped_irrelevant += len(out.statements) - len(statements)
        for st in statements:
            v, reason = check(st, whole, report, asks_number)
            if reason:
                report.dropped_unfit += 1
                why = why or reason
            if v is not None:
                verified.append(v)
        if not verified:  # the model answered, but with evidence that fails: try the best-ranked sentences
            v, again = repair(whole, asks_number, set())
            if v is not None:
                verified.append(v)
            why = why or again
    if not verified:
        report.refusal = why or refusal("nothing_verified")
        return refused(question, report.refusal)
    cited = [v.citations[0].doc_id for v in verified]
    if len(places) >= 2:  # every place asked: its lines are led by its name, or it is named as not found
        for v, d in zip(verified, cited):
            place = catalog.docs[d].place if d in catalog.docs else ""
            if place and not v.text.startswith(place):
                v.text = f"{place}：{v.text}"
        missing += [gap_line(place=pl) for pl, ds in places if not set(ds) & set(cited)]
    elif len(set(cited)) >= 2:  # one place, several documents: say which each line comes from
        names = _doc_names(verified, catalog)
        for v, d in zip(verified, cited):
            if names.get(d) and not v.text.startswith(names[d]):
                v.text = f"{names[d]}：{v.text}"
    report.gaps = list(dict.fromkeys(missing))
    return compose(question, verified, report.gaps)
