"""The question's words: content terms (jieba), question cues, numbers as written."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from llmstruct.text.normalize import normalize, to_simplified
from llmstruct.text.tokens import jieba_tokenizer
from llmstruct.vocab import VOCAB

if TYPE_CHECKING:
    from llmstruct.answer.catalog import Catalog

_YEAR = re.compile(r"(20\d\d)\s*年?")

_ITEM_NO = re.compile(r"第\s*(\d{1,3})\s*项")

QUOTED = re.compile(r"[“\"「]([^”\"」]{4,40})[”\"」]")


def simplify(text: str) -> str:
    return to_simplified(text)


def _strip_names(text: str, names: Iterable[str]) -> str:
    for n in names:
        text = text.replace(n, " ")
    return text


_STOP = set(VOCAB.words("question_stopwords"))

GENERIC_WORDS = set(VOCAB.words("generic_terms"))


def content_terms(question: str, catalog: Catalog | None = None) -> list[str]:
    """The question's search words (jieba): places, years, item numbers, question words and
    single characters removed."""
    q = simplify(question)
    if catalog is not None:
        q = _strip_names(q, [n for n, _, _ in catalog.place_names])
    q = _YEAR.sub(" ", q)
    q = _ITEM_NO.sub(" ", q)
    words = []
    for w in (catalog.tokenizer if catalog is not None else jieba_tokenizer()).cut(q):
        w = w.strip()
        if len(w) < 2 or w in _STOP or re.fullmatch(r"[\d.%]+|[^\w]+", w):
            continue
        if w not in words:
            words.append(w)
    return words


def bigrams(text: str) -> set[str]:
    text = re.sub(r"\s", "", text)
    return {text[i:i + 2] for i in range(len(text) - 1)}


NUMBER = re.compile(r"\d+(?:\.\d+)?")

ASKS_NUMBER = VOCAB.cue("number")

_ASKED_UNIT = re.compile(r"多少\s*(亿元|万元|元|万人|人|个|家|项(?!目)|亩|万亩|座|户|套|辆|公里|吨)")


# What kind of figure a question asks for: a plan (target/forecast) or what happened.
_ASKS_PLAN = VOCAB.cue("plan")

_ASKS_ACTUAL = VOCAB.cue("actual")


# Words that say how a figure is measured, not what it is about (总额, 增幅, 目标 ...).
_MEASURE_WORDS = frozenset(VOCAB.words("measure_words"))


def numbers_in(text: str) -> list[str]:
    """Numbers as written, with thousands separators and spaces removed."""
    t = re.sub(r"(?<=\d)[,，\s](?=\d{3})", "", normalize(text)[0].text)
    out = []
    for m in NUMBER.finditer(t):
        v = m.group(0)
        out.append(v.rstrip("0").rstrip(".") if "." in v else v)
    return out


def compact(text: str) -> str:
    return re.sub(r"\s", "", text)
