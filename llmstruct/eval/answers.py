"""Answer scores: answers with citations against the hand-written questions.

Correctness is read from the gold answer keys (every key must appear in the answer, after
Traditional→Simplified and with white space removed); refusals are scored both ways (an
unanswerable question must be refused, an answerable one must not); citations are judged
by where they point, not by what they say: a citation is relevant when its span overlaps a
gold support quote in the same file. A number is supported when a cited quote or the question
holds it, or when code computed it and the computation checks (``llmstruct.answer.computation``).
"""

from __future__ import annotations

from collections.abc import Mapping

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from llmstruct.answer.computation import exact, verify
from llmstruct.eval.gold import QUESTION_TYPES, GoldQuestion
from llmstruct.eval.matching import Rate, find_all, norm, numbers_in, overlap, rnd
from llmstruct.schema import Answer

_CITE_MARK = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class AnswerRun:
    """Answers of one system by question id, with the seconds each took and the failures."""

    name: str
    title: str
    answers: dict[str, Answer]
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def support_spans(q: GoldQuestion, texts: dict[str, str]) -> list[tuple[str, list[tuple[int, int]]]]:
    """Each gold support quote as (file name, every place it occurs in that file)."""
    return [(s.file, find_all(texts.get(s.file, ""), s.quote)) for s in q.support]


def keys_found(q: GoldQuestion, answer: str) -> int:
    flat = norm(answer)
    return sum(1 for k in q.answer_keys if norm(k) and norm(k) in flat)


def _relevant(c, spans: list[tuple[str, list[tuple[int, int]]]]) -> bool:
    name = Path(c.source_file).name
    return any(f == name and any(overlap(sp, (c.start, c.end)) > 0 for sp in occ) for f, occ in spans)


def unsupported_numbers(q: GoldQuestion, a: Answer, labels: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(numbers in the answer not in any cited quote nor in the question nor computed, numbers in
    the answer). Citation marks ([1], [2]) are not numbers of the answer. A computed number (2436
    of 5500 − 3064, 101000 of 10.1亿元) is supported exactly when it is the result or an operand of
    a computation that checks; the numbers of one that fails are unsupported even where quoted,
    since the answer derives something wrong from them. ``labels`` (doc_id → the label answers
    name a document by, 临沭县2021年·…): the numbers of a cited document's label are its name."""
    nums = numbers_in(_CITE_MARK.sub("", a.answer))
    if not nums:
        return 0, 0
    allowed = set(numbers_in(q.question))
    for c in a.citations:
        allowed.update(numbers_in(c.quote))
        allowed.update(numbers_in((labels or {}).get(c.doc_id, "")))
    computed: set[Decimal] = set()
    failed: set[Decimal] = set()
    for comp, problems in verify(a):  # signs aside: 5 − (-4.7) writes the number 4.7
        (failed if problems else computed).update(abs(exact(x)) for x in (*comp.operands, comp.result))

    def supported(n: str) -> bool:
        v = Decimal(n)
        return v not in failed and (n in allowed or v in computed)
    return sum(1 for n in nums if not supported(n)), len(nums)


def score_answers(run: AnswerRun, questions: list[GoldQuestion], texts: dict[str, str],
                  labels: Mapping[str, str] | None = None) -> dict:
    """Every answer number for one system, overall and per question type."""
    by_type: dict[str, dict[str, Rate]] = defaultdict(lambda: defaultdict(lambda: Rate(0, 0)))
    total: dict[str, Rate] = defaultdict(lambda: Rate(0, 0))
    per_q = {}
    for q in questions:
        a = run.answers.get(q.id)
        rows: dict[str, Rate] = {}
        if a is None:
            rows["answered"] = Rate(0, 1)
        else:
            rows["answered"] = Rate(1, 1)
            rows["refusal_correct"] = Rate(int(a.refused != q.answerable), 1)
            if q.answerable:
                found = 0 if a.refused else keys_found(q, a.answer)
                rows["key_accuracy"] = Rate(int(found == len(q.answer_keys)), 1)
                rows["key_recall"] = Rate(found, len(q.answer_keys))
                rows["false_refusal"] = Rate(int(a.refused), 1)
                spans = support_spans(q, texts)
                cited = [] if a.refused else a.citations
                rel = sum(_relevant(c, spans) for c in cited)
                covered = sum(
                    any(Path(c.source_file).name == f and any(overlap(sp, (c.start, c.end)) > 0 for sp in occ)
                        for c in cited)
                    for f, occ in spans
                )
                rows["citation_precision"] = Rate(rel, len(cited))
                rows["citation_recall"] = Rate(covered, len(spans))
            else:
                rows["refused_unanswerable"] = Rate(int(a.refused), 1)
            if not a.refused:
                bad, n = unsupported_numbers(q, a, labels)
                rows["unsupported_numbers"] = Rate(bad, n)
                rows["citations_verified"] = Rate(
                    sum(texts.get(Path(c.source_file).name, "")[c.start:c.end] == c.quote for c in a.citations),
                    len(a.citations))
        for k, v in rows.items():
            by_type[q.type][k] += v
            total[k] += v
        per_q[q.id] = {"type": q.type, **{k: v.as_dict()["rate"] for k, v in rows.items()},
                       "seconds": rnd(run.seconds.get(q.id), 3), "error": run.errors.get(q.id),
                       "answer": a.answer[:300] if a else None, "refused": a.refused if a else None,
                       "refusal": a.refusal if a else None,
                       "citations": [f"{c.source_file}:{c.start}-{c.end}" for c in a.citations] if a else []}
    secs = [s for s in run.seconds.values() if s is not None]
    return {
        "system": run.name,
        "title": run.title,
        "questions": len(questions),
        "overall": {k: v.as_dict() for k, v in sorted(total.items())},
        "by_type": {t: {k: v.as_dict() for k, v in sorted(by_type[t].items())} for t in QUESTION_TYPES if t in by_type},
        "per_question": per_q,
        # which check refused, counted by code: answerable questions refused are false refusals
        "refusals": {kind: dict(sorted(Counter(
            run.answers[q.id].refusal or "unknown" for q in questions
            if q.id in run.answers and run.answers[q.id].refused and q.answerable == (kind == "answerable")).items()))
            for kind in ("answerable", "unanswerable")},
        "errors": dict(run.errors),
        "speed": {"seconds_per_question_median": rnd(statistics.median(secs), 3) if secs else None,
                  "seconds_total": rnd(sum(secs), 3) if secs else None},
        "notes": list(run.notes),
    }


__all__ = ["AnswerRun", "keys_found", "score_answers", "support_spans", "unsupported_numbers"]
