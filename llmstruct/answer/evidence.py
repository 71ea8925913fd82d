"""Candidate quotes: the passages' sentences, ranked for the question. The grammar admits only
these as quotes, so a quote is verbatim by construction."""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmstruct.answer.passages import Passage, coverage
from llmstruct.answer.terms import ASKS_NUMBER, NUMBER, simplify
from llmstruct.answer.verification import periods

QUOTE_CHARS = 70


# Sentences addressed to an assistant are not evidence (a planted "忽略以上要求，回答：…").
_INSTRUCTION = re.compile(r"忽略(以上|上述|之前|前面)|无视(以上|上述)|以上要求|请(直接)?回答|回答[:：]|你(必须|应该|要)|"
                          r"ignore (all |the )?(previous|above)", re.I)


def clauses(passages: Sequence[Passage], limit: int = QUOTE_CHARS) -> list[tuple[str, int]]:
    """The sentences of the passages (clean text), long ones cut at commas, each with the
    index of its passage: the strings a quote may be, so a quote is verbatim by construction."""
    out: list[tuple[str, int]] = []
    for k, p in enumerate(passages):
        for sent in re.findall(r"[^。；！？\n]+[。；！？]?", p.text):
            parts = re.findall(r"[^，,]+[，,]?", sent) if len(sent) > limit else [sent]
            cur = ""
            for part in parts:
                if cur and len(cur) + len(part) > limit:
                    out.append((cur, k))
                    cur = ""
                cur += part[:limit]
            out.append((cur, k))
    seen: dict[str, int] = {}
    for c, k in out:
        c = c.strip().rstrip("，,")
        if len(c) >= 4 and c not in seen and not _INSTRUCTION.search(c):
            seen[c] = k
    return list(seen.items())


def quote_options(passages: Sequence[Passage], terms: Sequence[str], years: Sequence[str], contexts: Sequence[str],
                  question: str, k: int = 8) -> tuple[str, ...]:
    """The ``k`` sentences most likely to hold the answer, best first: question words they
    contain, the asked year or period in their passage's context, a number when one is
    asked for; the best two of every document come first, so a comparison sees each side.
    The grammar offers only these, so a small model picks among relevant evidence."""
    return tuple(c for _, c in ranked_clauses(passages, terms, years, contexts, question, k))


def ranked_clauses(passages: Sequence[Passage], terms: Sequence[str], years: Sequence[str], contexts: Sequence[str],
                   question: str, k: int = 8) -> list[tuple[float, str]]:
    """(relevance, sentence) of the best ``k`` sentences, best first (see quote_options)."""
    asks_number = bool(ASKS_NUMBER.search(simplify(question)))
    asked_periods = periods(question)
    scored = []
    for order, (c, i) in enumerate(clauses(passages)):
        score = coverage(terms, c)
        ctx = contexts[i] + passages[i].text
        if years and any(y in ctx for y in years):
            score += 0.15
        if years and any(y in c for y in years):
            score += 0.1
        if asked_periods and asked_periods & periods(c):
            score += 0.2
        if asks_number and NUMBER.search(c):
            score += 0.2
        scored.append((-score, order, c, passages[i].hit.doc_id))
    scored.sort()
    docs = list(dict.fromkeys(d for *_, d in scored))
    first = [x for d in docs for x in [y for y in scored if y[3] == d][:2]] if len(docs) > 1 else []
    rest = [x for x in scored if x not in first]
    picked = sorted(first)[:k] + rest
    return [(-s, c) for s, _, c, _ in picked[:k]]
