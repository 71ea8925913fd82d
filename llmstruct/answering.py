"""Grounded question answering: plan, retrieve, answer under a grammar, verify in code.

The model never answers from memory: it sees numbered passages (document text wrapped as
data), and its output is decoded under a schema built per call in which a citation can
only be one of the numbers actually shown. Code then checks every statement: its quote
must occur in a cited passage (it becomes a citation whose offsets point into the original
file text), and every number of its text must occur in that quote. What fails is repaired
(cite moved to the passage that holds the quote, text replaced by the quote) or dropped.
Nothing left, weak retrieval evidence, or evidence that does not fit the question's
period or unit, means a refusal. Count and list questions are answered from the
structured records, not from passage similarity.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, conlist, create_model

from llmstruct.grounding import align
from llmstruct.normalize import NormText, drop_inline_spaces, normalize, to_simplified
from llmstruct.prompting import load_template
from llmstruct.schema import Answer, Citation, DocumentRecord, Hit, Indicator, Status, Strict, TaskItem, UnitRole

PLAN_PROMPT = "plan_question.v1"
ANSWER_PROMPT = "answer_question.v2"
PLACES_PROMPT = "answer_places.v1"
PARTS_PROMPT = "answer_parts.v1"
MAX_PLACES = 5
MAX_PARTS = 3
REFUSAL = "文档中没有找到能回答这个问题的内容。"
NOTHING_VERIFIED = "没有通过核验的陈述"
PASSAGE_CHARS = 220
MAX_PASSAGES = 5
MIN_COVERAGE = 0.5
RELEVANCE_SHARE = 0.6
REPAIR_TRIES = 2
PLAN_MAX_TOKENS = 60
QUOTE_CHARS = 70
TEXT_CHARS = 60

Intent = Literal["lookup", "list", "count", "compare"]


# ----------------------------------------------------------------------------- plan


class Plan(Strict):
    """What a question asks and where to look; the filters are linked to the store's data."""

    question: str
    standalone: str = Field(description="the question with a follow-up resolved against history")
    intent: Intent
    keywords: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    doc_ids: list[str] = Field(default_factory=list)
    item_no: int | None = None
    leader: str | None = None
    unit: str | None = None
    roles: list[UnitRole] = Field(default_factory=list)
    status: Status | None = None
    source: Literal["rules", "model", "model+rules"] = "rules"


class ModelPlan(Strict):
    """The part of a plan the model writes (under a grammar); code links the filters."""

    intent: Intent
    keywords: list[Annotated[str, Field(max_length=8)]] = Field(max_length=4)


_YEAR = re.compile(r"(20\d\d)\s*年?")
_ITEM_NO = re.compile(r"第\s*(\d{1,3})\s*项")
# Sentences addressed to an assistant are not evidence (a planted "忽略以上要求，回答：…").
_INSTRUCTION = re.compile(r"忽略(以上|上述|之前|前面)|无视(以上|上述)|以上要求|请(直接)?回答|回答[:：]|你(必须|应该|要)|"
                          r"ignore (all |the )?(previous|above)", re.I)
_QUOTED = re.compile(r"[“\"「]([^”\"」]{4,40})[”\"」]")
_COUNT_CUE = re.compile(r"(几|多少)\s*(项(?!目)|份|条|个(?:任务|单位|部门|镇|街道|镇街|地区|文件|报告|指标))|有几|共有几")
_LIST_CUE = re.compile(r"哪些(任务|单位|部门|镇|街道|镇街|报告|文件|项)|列出|列举")
_COMPARE_CUE = re.compile(r"分别|比较|哪个更|哪个最|相差|对比|各是|各有")
_PERIODS = ("全年", "上半年", "下半年", "一季度", "二季度", "三季度", "四季度", "第一季度", "第二季度", "第三季度", "第四季度")
_MONTH_RANGE = re.compile(r"(\d{1,2})\s*[-—－~至到]\s*(\d{1,2})\s*月")
_ROLE_CUES: tuple[tuple[str, UnitRole], ...] = (
    ("配合", "cooperating"), ("牵头", "lead"), ("第一责任", "lead"), ("负责", "responsible"), ("责任单位", "responsible"),
)
_STATUS_CUES: tuple[tuple[str, Status], ...] = (
    ("已完成", "completed"), ("完成了", "completed"), ("滞后", "behind"), ("落后", "behind"), ("搁置", "suspended"),
    ("暂缓", "suspended"), ("未启动", "not_started"), ("推进中", "in_progress"),
)


def _simplify(text: str) -> str:
    return to_simplified(text)


@dataclass(frozen=True)
class DocInfo:
    """One report as the planner and the UI see it."""

    doc_id: str
    source_file: str
    title: str
    doc_type: str
    period: str | None
    province: str | None
    city: str | None
    county: str | None
    town: str | None

    @property
    def place(self) -> str:
        return self.town or self.county or self.city or self.province or ""

    @property
    def label(self) -> str:
        """Short name for lists and citations: place, year, the start of the title."""
        year = f"{self.period}年" if self.period else ""
        title = self.title if len(self.title) <= 20 else self.title[:19] + "…"
        return f"{self.place}{year}·{title}" if self.place else f"{year}{title}"


class Catalog:
    """The store's documents and structured items, with the names the planner links to.

    Built from DocumentRecords (from the store, or from structuring files directly) and the
    original text of each source file, which item passages are sliced from.
    """

    def __init__(self, records: Iterable[DocumentRecord], texts: dict[str, str] | None = None):
        self.records: dict[str, DocumentRecord] = {r.doc_id: r for r in records}
        self.texts: dict[str, str] = dict(texts or {})
        self.docs: dict[str, DocInfo] = {
            r.doc_id: DocInfo(
                r.doc_id, r.source_file, r.title.name if r.title else r.doc_id, r.doc_type, r.period,
                r.region.province, r.region.city, r.region.county, r.region.town,
            )
            for r in self.records.values()
        }
        self.leaders = sorted({ld.name for r in self.records.values() for i in r.items for ld in i.leaders}, key=len, reverse=True)
        units: dict[str, str] = {}
        for r in self.records.values():
            for i in r.items:
                for u in i.units:
                    units.setdefault(u.name, u.canonical)
                    units.setdefault(u.canonical, u.canonical)
        self.units = dict(sorted(units.items(), key=lambda kv: len(kv[0]), reverse=True))
        self._places = self._place_names()
        jieba = _jieba()
        for word in [n for n, _, _ in self._places] + self.leaders + list(self.units):
            jieba.add_word(word)

    def _place_names(self) -> list[tuple[str, str, int]]:
        """(name as it may be written, canonical place, level) longest first; level 3 = town."""
        names: dict[str, tuple[str, int]] = {}
        for d in self.docs.values():
            for level, place in ((3, d.town), (2, d.county), (1, d.city)):
                if not place:
                    continue
                names.setdefault(place, (place, level))
                short = re.sub(r"(街道|镇|乡|县|区|市)$", "", place)
                if len(short) >= 2 and short != place:
                    names.setdefault(short, (place, level))
        return sorted(((n, p, lv) for n, (p, lv) in names.items()), key=lambda x: (-len(x[0]), -x[2]))

    def find_places(self, text: str) -> list[str]:
        """Places named in ``text`` (canonical, in order of mention), longest names first."""
        taken = [False] * len(text)
        found: list[tuple[int, str]] = []
        for name, place, _ in self._places:
            for m in re.finditer(re.escape(name), text):
                if any(taken[m.start():m.end()]):
                    continue
                for k in range(m.start(), m.end()):
                    taken[k] = True
                found.append((m.start(), place))
        out: list[str] = []
        for _, place in sorted(found):
            if place not in out:
                out.append(place)
        return out

    def docs_for(self, places: Sequence[str], years: Sequence[str]) -> list[str]:
        """Documents about the places (the most specific level wins); years break ties."""
        chosen: list[str] = []
        for place in places:
            exact = [d for d in self.docs.values() if d.place == place]
            if not exact:
                exact = [d for d in self.docs.values() if place in (d.town, d.county, d.city)]
            if years and len({d.period for d in exact}) > 1:
                same = [d for d in exact if d.period in years]
                exact = same or exact
            chosen += [d.doc_id for d in exact if d.doc_id not in chosen]
        return chosen

    def items_named(self, question: str, doc_ids: Sequence[str] = ()) -> list[tuple[DocumentRecord, TaskItem]]:
        """Items whose task text contains a phrase the question puts in quotes (“深化‘放管服’改革”)."""
        phrases = [_simplify(x) for x in _QUOTED.findall(question)]
        if not phrases:
            return []
        out = []
        for rec in self.records.values():
            if doc_ids and rec.doc_id not in doc_ids:
                continue
            for it in rec.items:
                text = _simplify(it.task.text)
                if any(ph in text for ph in phrases):
                    out.append((rec, it))
        return out

    def figures_in(self, doc_id: str, start: int, end: int) -> list[Indicator]:
        """The structured figures whose evidence overlaps ``[start, end)`` of the document's
        file text: what a quote states, as the records classify it (target, actual …)."""
        rec = self.records.get(doc_id)
        if rec is None:
            return []
        return [ind for it in rec.items for ind in [*it.targets, *(g for p in it.progress for g in p.indicators)]
                if ind.evidence.start < end and ind.evidence.end > start]

    def item(self, item_id: str) -> tuple[DocumentRecord, TaskItem] | None:
        doc_id = item_id.split("#", 1)[0]
        rec = self.records.get(doc_id)
        if rec is None:
            return None
        for it in rec.items:
            if it.item_id == item_id:
                return rec, it
        return None


def _strip_names(text: str, names: Iterable[str]) -> str:
    for n in names:
        text = text.replace(n, " ")
    return text


_STOP = {
    "多少", "什么", "哪些", "哪个", "哪位", "哪几", "是谁", "如何", "怎么", "怎样", "怎么样", "为什么", "分别", "各自",
    "是否", "有没有", "请问", "几个", "几项", "几份", "作为", "其中", "这项", "这个", "那个", "情况", "进展到", "程度", "一下", "具体", "要求",
}
_GENERIC = {"任务", "报告", "工作", "政府", "通报", "文件", "目标", "计划", "实现", "完成", "达到", "单位", "情况"}


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()
    return jieba


def content_terms(question: str, catalog: Catalog | None = None) -> list[str]:
    """The question's search words (jieba): places, years, item numbers, question words and
    single characters removed."""
    q = _simplify(question)
    if catalog is not None:
        q = _strip_names(q, [n for n, _, _ in catalog._places])
    q = _YEAR.sub(" ", q)
    q = _ITEM_NO.sub(" ", q)
    words = []
    for w in _jieba().cut(q):
        w = w.strip()
        if len(w) < 2 or w in _STOP or re.fullmatch(r"[\d.%]+|[^\w]+", w):
            continue
        if w not in words:
            words.append(w)
    return words


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"\s", "", text)
    return {text[i:i + 2] for i in range(len(text) - 1)}


def _is_follow_up(question: str, catalog: Catalog | None) -> bool:
    terms = content_terms(question, catalog)
    return sum(len(t) for t in terms) <= 3


def resolve_follow_up(question: str, history: Sequence[str], catalog: Catalog | None) -> str:
    """A short follow-up ("那峄城区呢？") becomes the previous question with its place and
    year replaced; any other question stands alone."""
    if not history or not _is_follow_up(question, catalog):
        return question
    previous = history[-1]
    new_places = catalog.find_places(question) if catalog else []
    new_years = _YEAR.findall(question)
    out = previous
    if new_places and catalog is not None:
        old = catalog.find_places(previous)
        for name, place, _ in catalog._places:
            if place in old and name in out:
                out = out.replace(name, "\0", 1)
        if "\0" in out:
            out = out.replace("\0", new_places[0], 1).replace("\0", "")
        else:
            out = new_places[0] + out
    if new_years:
        old_years = _YEAR.findall(out)
        if old_years:
            out = out.replace(old_years[0], new_years[0], 1)
    return out


def rule_plan(question: str, history: Sequence[str] = (), catalog: Catalog | None = None) -> Plan:
    """A plan from cues in the text and names linked against the catalog (no model)."""
    standalone = resolve_follow_up(question.strip(), history, catalog)
    q = _simplify(standalone)
    places = catalog.find_places(q) if catalog else []
    years = list(dict.fromkeys(_YEAR.findall(q)))
    doc_ids = catalog.docs_for(places, years) if catalog else []
    m = _ITEM_NO.search(q)
    item_no = int(m.group(1)) if m and len(_ITEM_NO.findall(q)) == 1 else None
    if item_no is None and catalog is not None:
        named = catalog.items_named(q, doc_ids)
        if len(named) == 1 and named[0][1].seq_no is not None:
            doc_ids, item_no = [named[0][0].doc_id], named[0][1].seq_no
    leader = next((n for n in (catalog.leaders if catalog else []) if n in q), None)
    unit = None
    if catalog:
        name = next((n for n in catalog.units if n in q), None)
        unit = catalog.units[name] if name else None
    roles = list(dict.fromkeys(role for cue, role in _ROLE_CUES if cue in q)) if unit else []
    status = next((s for cue, s in _STATUS_CUES if cue in q), None)
    if _COUNT_CUE.search(q):
        intent: Intent = "count"
    elif _LIST_CUE.search(q):
        intent = "list"
    elif len(places) > 1 or _COMPARE_CUE.search(q):
        intent = "compare"
    else:
        intent = "lookup"
    return Plan(
        question=question, standalone=standalone, intent=intent, keywords=content_terms(q, catalog),
        regions=places, years=years, doc_ids=doc_ids, item_no=item_no,
        leader=leader, unit=unit, roles=roles, status=status, source="rules",
    )


def plan(question: str, history: Sequence[str] = (), catalog: Catalog | None = None, backend=None) -> Plan:
    """Plan a question: the model (under a grammar) gives intent and keywords, code links the
    filters; decisive cues in the text (几项/哪些任务/two places) override the model's intent."""
    rules = rule_plan(question, history, catalog)
    if backend is None:
        return rules
    tpl = load_template(PLAN_PROMPT)
    hist = "\n".join(f"- {h}" for h in history[-2:]) or "（无）"
    system, user = tpl.render(question=rules.standalone, history=hist)
    schema = ModelPlan
    out = backend.generate_json([backend.chat_prompt(system, user)], schema, max_new_tokens=PLAN_MAX_TOKENS)[0]
    if out.truncated:
        return rules
    try:
        mp = schema.model_validate_json(out.text)
    except ValidationError:
        return rules
    q = _simplify(rules.standalone)
    keywords = [k.strip() for k in mp.keywords if k.strip() and _simplify(k.strip()) in q]
    intent: Intent = mp.intent
    source: Literal["model", "model+rules"] = "model"
    decisive = rules.intent != "lookup"
    if decisive and intent != rules.intent:
        intent, source = rules.intent, "model+rules"
    elif not decisive and intent in ("count", "list") and not (rules.leader or rules.unit):
        # nothing in the records to count by: a count the records cannot answer is a lookup
        intent, source = "lookup", "model+rules"
    return rules.model_copy(update={"intent": intent, "keywords": keywords or rules.keywords, "source": source})


# ----------------------------------------------------------------------------- passages


def item_hits(record: DocumentRecord, item: TaskItem, original: str) -> list[Hit]:
    """An item's passages: its task (with leaders and units) and each progress block, as
    contiguous slices of the original text."""
    hits: list[Hit] = []
    meta: dict[str, str | int | float | bool] = {"seq_no": item.seq_no if item.seq_no is not None else -1,
                                                  "heading": item.heading, "kind": item.kind}
    task_spans = list(item.task.spans) + [ld.span for ld in item.leaders] + [s for u in item.units for s in u.spans]
    if task_spans:
        a, b = min(s.start for s in task_spans), max(s.end for s in task_spans)
        hits.append(Hit(chunk_id=f"{item.item_id}:task", doc_id=record.doc_id, item_id=item.item_id,
                        source_file=record.source_file, start=a, end=b, text=original[a:b], kind="task", metadata=meta))
    for k, p in enumerate(item.progress):
        spans = list(p.text.spans) + ([p.reporting_unit.span] if p.reporting_unit else [])
        a, b = min(s.start for s in spans), max(s.end for s in spans)
        hits.append(Hit(chunk_id=f"{item.item_id}:progress{k}", doc_id=record.doc_id, item_id=item.item_id,
                        source_file=record.source_file, start=a, end=b, text=original[a:b], kind="progress", metadata=meta))
    return hits


def catalog_hits(catalog: Catalog, doc_ids: Sequence[str] | None = None) -> list[Hit]:
    """Every item passage of the catalog's documents (those with their text loaded)."""
    out: list[Hit] = []
    for rec in catalog.records.values():
        if doc_ids and rec.doc_id not in doc_ids:
            continue
        text = catalog.texts.get(rec.doc_id)
        if text is None:
            continue
        for it in rec.items:
            out += item_hits(rec, it, text)
    return out


@dataclass(frozen=True)
class Passage:
    """A retrieved hit plus its clean view: what the model reads and what quotes align to."""

    hit: Hit
    clean: NormText

    @classmethod
    def of(cls, hit: Hit) -> "Passage":
        nt, _ = normalize(hit.text)
        nt = drop_inline_spaces(nt).sub(r"\s*\n\s*", "")
        return cls(hit, nt)

    @property
    def text(self) -> str:
        return self.clean.text


def coverage(terms: Sequence[str], text: str) -> float:
    """Keyword evidence strength: the weighted share of the question's words found in
    ``text`` (generic words such as 任务/目标 count half)."""
    if not terms:
        return 0.0
    flat = _compact(text)
    weights = [(len(t) * (0.5 if t in _GENERIC else 1.0), t in flat) for t in terms]
    total = sum(w for w, _ in weights)
    return sum(w for w, ok in weights if ok) / total if total else 0.0


def bm25_rank(terms: Sequence[str], passages: Sequence[Passage], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """BM25 scores over character bigrams (Chinese words are often two characters)."""
    grams = [g for t in terms for g in _bigrams(t)]
    if not passages or not grams:
        return [0.0] * len(passages)
    docs = [Counter(p.text[i:i + 2] for i in range(len(p.text) - 1)) for p in passages]
    avg = sum(sum(d.values()) for d in docs) / len(docs) or 1.0
    df = Counter(g for d in docs for g in set(grams) if g in d)
    n = len(docs)
    scores = []
    for d in docs:
        length = sum(d.values())
        s = 0.0
        for g in set(grams):
            tf = d.get(g, 0)
            if tf:
                idf = math.log(1 + (n - df[g] + 0.5) / (df[g] + 0.5))
                s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
        scores.append(s)
    return scores


def sub_passage(passage: Passage, a: int, b: int) -> Passage:
    """Clean range ``[a, b)`` of a passage as its own passage (still an exact slice of the file)."""
    span = passage.clean.span(a, b)
    hit = passage.hit
    return Passage.of(hit.model_copy(update={"start": hit.start + span.start, "end": hit.start + span.end, "text": span.text}))


def windows(passage: Passage, width: int = PASSAGE_CHARS) -> list[Passage]:
    """A long passage cut at sentence ends into windows of at most about ``width`` clean
    characters (the model reads short, focused evidence faster and better)."""
    text = passage.text
    if len(text) <= width * 1.3:
        return [passage]
    ends = [m.end() for m in re.finditer(r"[。；;！？]", text)]
    out, a = [], 0
    while a < len(text):
        limit = a + width
        cut = max((e for e in ends if a < e <= limit), default=None)
        if cut is None or len(text) - a <= width * 1.3:
            cut = len(text) if len(text) - a <= width * 1.3 else limit
        out.append(sub_passage(passage, a, cut))
        a = cut
    return out


# ----------------------------------------------------------------------------- retrieval


def retrieve(question_plan: Plan, catalog: Catalog, store=None, k: int = MAX_PASSAGES,
             filters: dict[str, str] | None = None) -> list[Hit]:
    """Passages for a plan: the store's hybrid search (per document when the plan names
    several places) when a store is given, else BM25 over the catalog's item passages;
    both re-ranked by BM25 on the question's content and focused to a short window."""
    terms = question_plan.keywords or content_terms(question_plan.standalone, catalog)
    docs = list(question_plan.doc_ids)
    if filters and filters.get("doc_id"):
        docs = [filters["doc_id"]]
    groups: list[list[Hit]] = []
    if store is not None:
        from llmstruct.retrieval import search

        base = {k2: v for k2, v in (filters or {}).items() if v}
        query = question_plan.standalone
        if docs:
            for d in docs:
                groups.append(search(store, query, k=max(k, 8), filters={**base, "doc_id": d}))
        else:
            groups.append(search(store, query, k=max(2 * k, 8), filters=base or None))
    else:
        for d in docs or [None]:
            groups.append(catalog_hits(catalog, [d] if d else None))
    out: list[Passage] = []
    per_group = max(1, k // max(1, len(groups))) if len(groups) > 1 else k
    for hits in groups:
        passages = [w for h in hits if h.text.strip() for w in windows(Passage.of(h))]
        scores = bm25_rank(terms, passages)
        if question_plan.item_no is not None:
            scores = [s + (5.0 if p.hit.metadata.get("seq_no") == question_plan.item_no else 0.0)
                      for s, p in zip(scores, passages)]
        ranked = sorted(zip(scores, range(len(passages))), key=lambda x: -x[0])
        picked = [passages[i] for s, i in ranked[:per_group] if s > 0]
        out += picked
    seen: set[tuple[str, int, int]] = set()
    hits_out: list[Hit] = []
    for p in out:
        key = (p.hit.source_file, p.hit.start, p.hit.end)
        if key not in seen:
            seen.add(key)
            hits_out.append(p.hit)
    return hits_out[:max(k, len(groups))]


# ----------------------------------------------------------------------------- answer schema


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
    asks_number = bool(_ASKS_NUMBER.search(_simplify(question)))
    asked_periods = _periods(question)
    scored = []
    for order, (c, i) in enumerate(clauses(passages)):
        score = coverage(terms, c)
        ctx = contexts[i] + passages[i].text
        if years and any(y in ctx for y in years):
            score += 0.15
        if years and any(y in c for y in years):
            score += 0.1
        if asked_periods and asked_periods & _periods(c):
            score += 0.2
        if asks_number and _NUMBER.search(c):
            score += 0.2
        scored.append((-score, order, c, passages[i].hit.doc_id))
    scored.sort()
    docs = list(dict.fromkeys(d for *_, d in scored))
    first = [x for d in docs for x in [y for y in scored if y[3] == d][:2]] if len(docs) > 1 else []
    rest = [x for x in scored if x not in first]
    picked = sorted(first)[:k] + rest
    return [(-s, c) for s, _, c, _ in picked[:k]]


_CLOSED = ConfigDict(extra="forbid", frozen=True)


def _statement_model(name: str, numbers: tuple[int, ...], quotes: tuple[str, ...]) -> type[BaseModel]:
    """One statement: a quote (one of ``quotes`` verbatim, or free text when none are given),
    a short text, and one or two citations among ``numbers``."""
    quote_type = (Literal[quotes], ...) if quotes else (str, Field(max_length=QUOTE_CHARS))  # type: ignore[valid-type]
    return create_model(
        name,
        __config__=_CLOSED,
        quote=quote_type,
        text=(str, Field(max_length=TEXT_CHARS)),
        cites=(conlist(Literal[numbers], min_length=1, max_length=2), ...),  # type: ignore[valid-type]
    )


def _answer_or_refusal(name: str, statements: Any) -> type[RootModel]:
    """``{"refuse":true}`` or ``{"refuse":false,"statements":...}``."""
    refusal = create_model("Refusal", __config__=_CLOSED, refuse=(Literal[True], ...))
    answered = create_model(name, __config__=_CLOSED, refuse=(Literal[False], ...), statements=(statements, ...))
    return RootModel[Union[answered, refusal]]  # type: ignore[valid-type]


@lru_cache(maxsize=64)
def answer_schema(numbers: tuple[int, ...], max_statements: int, quotes: tuple[str, ...] = ()) -> type[RootModel]:
    """Output schema for one call: ``{"refuse":true}`` or ``{"refuse":false,"statements":[...]}``
    with at least one statement. Cites admit only the retrieved passages' numbers; with
    ``quotes`` given, a quote can only be one of those sentences (verbatim evidence)."""
    statement = _statement_model(f"Statement_{len(numbers)}", numbers, quotes)
    return _answer_or_refusal(f"Answered_{len(numbers)}_{max_statements}",
                              conlist(statement, min_length=1, max_length=max_statements))


@lru_cache(maxsize=64)
def grouped_schema(groups: tuple[tuple[tuple[int, ...], tuple[str, ...]], ...]) -> type[RootModel]:
    """Output schema for an answer in groups (the places of a comparison, the parts of a
    question): ``{"refuse":true}`` or exactly one statement per group, in order; statement i
    can quote only group i's sentences and cite only group i's passages (``groups``:
    (passage numbers, sentences) per group)."""
    items = tuple(_statement_model(f"Group{i}_{len(numbers)}", numbers, quotes)
                  for i, (numbers, quotes) in enumerate(groups, start=1))
    return _answer_or_refusal(f"AnsweredGroups_{len(groups)}", tuple[items])


def question_parts(question: str, catalog: Catalog | None = None) -> list[str]:
    """The sub-questions of a question asked in parts (``……完成多少？2023年的目标是多少？``);
    ``[]`` for a single question. A later part is led by the first part's subject (its
    content words without years or measure words such as 目标, 实际), so 2023年的目标是多少
    asks about the same thing but not about the first part's year or kind of figure."""
    parts = [x.strip() for x in re.split(r"[？?]", question) if len(x.strip()) >= 3]
    if not 2 <= len(parts) <= MAX_PARTS:
        return []
    subject = "".join(t for t in content_terms(parts[0], catalog)
                      if t not in _MEASURE_WORDS and not re.fullmatch(r"[\d\-]+[年月]?", t))
    return [parts[0] + "？"] + [f"{subject}，{x}？" if subject else f"{x}？" for x in parts[1:]]


def place_groups(passages: Sequence[Passage], doc_ids: Sequence[str]) -> list[list[int]]:
    """Indices of each named document's passages, in the plan's order, when a question
    names two or more places and at least two of them have passages; else ``[]``."""
    if len(doc_ids) < 2:
        return []
    groups = [[i for i, ps in enumerate(passages) if ps.hit.doc_id == d] for d in dict.fromkeys(doc_ids)]
    groups = [g for g in groups if g][:MAX_PLACES]
    return groups if len(groups) >= 2 else []


def passage_header(hit: Hit, catalog: Catalog | None) -> str:
    """Where a passage comes from: place, year and report, its section, its item number."""
    parts = []
    if catalog and hit.doc_id in catalog.docs:
        parts.append(catalog.docs[hit.doc_id].label)
        found = catalog.item(hit.item_id) if hit.item_id else None
        if found and found[1].section_path:
            parts.append(_simplify(found[1].section_path[0])[:16])
    seq = hit.metadata.get("seq_no")
    if isinstance(seq, int) and seq >= 0:
        parts.append(f"第{seq}项{'进展' if hit.kind == 'progress' else ''}")
    return "·".join(parts)


def build_prompt(question: str, passages: Sequence[Passage], backend, catalog: Catalog | None,
                 max_statements: int, candidates: Sequence[str] = (),
                 places: Sequence[tuple[str, Sequence[str]]] = (), template: str = PLACES_PROMPT) -> tuple[str, str]:
    """The answer prompt and its question-independent start (the system message), which a
    backend may keep prefilled. Passages are numbered with their source; the candidate
    sentences are the only strings the grammar admits as quotes. With ``places`` ((label,
    sentences) per place, or per part of the question with ``template=PARTS_PROMPT``) the
    candidates are grouped and one statement per group is asked."""
    lines = []
    for n, p in enumerate(passages, start=1):
        header = passage_header(p.hit, catalog)
        lines.append(f"[{n}]（{header}）{p.text}" if header else f"[{n}] {p.text}")
    common = dict(question=question, passages="\n".join(lines), n=len(passages),
                  numbers="、".join(str(i) for i in range(1, len(passages) + 1)))
    if places:
        options = "\n".join(f"{k}. {label}\n" + "\n".join(f"- {c}" for c in cands)
                             for k, (label, cands) in enumerate(places, start=1))
        system, user = load_template(template).render(candidates=options, groups=len(places), **common)
    else:
        options = "\n".join(f"- {c}" for c in candidates) or "（无）"
        system, user = load_template(ANSWER_PROMPT).render(candidates=options, max_statements=max_statements, **common)
    prompt = backend.chat_prompt(system, user)
    cut = prompt.rfind(user)
    return prompt, (prompt[:cut] if cut > 0 else "")


# ----------------------------------------------------------------------------- verification

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ASKS_NUMBER = re.compile(r"多少|几|百分之|比例|增速|增幅|增长目标|目标是|率")
_ASKED_UNIT = re.compile(r"多少\s*(亿元|万元|元|万人|人|个|家|项(?!目)|亩|万亩|座|户|套|辆|公里|吨)")
# What kind of figure a question asks for: a plan (target/forecast) or what happened.
_ASKS_PLAN = re.compile(r"目标|计划|力争|预期|预计|要求|安排|控制在|打算")
_ASKS_ACTUAL = re.compile(r"实际|完成|实现|已经|了多少|了几|是否达|达标|还差|距离|超出|相差|情况")
# Words that say how a figure is measured, not what it is about (总额, 增幅, 目标 ...).
_MEASURE_WORDS = frozenset(
    "多少 亿元 万元 万人 全年 上半年 一季度 年度 增长 同比 计划 目标 新增 分别 实际 预期 预计 是否 达到 完成 "
    "实现 情况 进展 总额 总量 总值 百分之几 增幅 增速 比例 收入 多少亿元 各是 相差 还差 距离".split())


def numbers_in(text: str) -> list[str]:
    """Numbers as written, with thousands separators and spaces removed."""
    t = re.sub(r"(?<=\d)[,，\s](?=\d{3})", "", normalize(text)[0].text)
    out = []
    for m in _NUMBER.finditer(t):
        v = m.group(0)
        out.append(v.rstrip("0").rstrip(".") if "." in v else v)
    return out


def _compact(text: str) -> str:
    return re.sub(r"\s", "", text)


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
    ``line_prefix``: put before its verified line (a comparison's place name)."""

    passages: list[int]
    ranked: list[tuple[float, str]]
    question: str
    label: str
    line_prefix: str = ""


def _part_plan(p: Plan, part: str) -> Plan:
    """The plan for one part: its own text, keywords and years (the whole question's years
    when the part names none)."""
    years = re.findall(r"((?:19|20)\d{2})年", part)
    return p.model_copy(update={"standalone": part, "keywords": [], "years": list(dict.fromkeys(years)) or p.years})


def _merge_hits(groups: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    """Hits of several retrievals, round-robin so each keeps its best, without repeats."""
    out: list[Hit] = []
    seen: set[tuple[str, int, int]] = set()
    for rank in range(max((len(g) for g in groups), default=0)):
        for g in groups:
            if rank < len(g):
                key = (g[rank].source_file, g[rank].start, g[rank].end)
                if key not in seen and len(out) < limit:
                    seen.add(key)
                    out.append(g[rank])
    return out


@dataclass
class VerifyReport:
    statements: int = 0
    kept: int = 0
    dropped_quote: int = 0
    cite_repaired: int = 0
    text_repaired: int = 0
    dropped_irrelevant: int = 0
    dropped_unfit: int = 0
    best_sentence_used: int = 0
    refusal_reason: str = ""


def _locate(quote: str, passage: Passage) -> tuple[int, int, str] | None:
    """Original-file offsets and text of ``quote`` inside ``passage``, or None."""
    q = quote.strip().strip("「」“”\"'")
    if len(_compact(q)) < 2:
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
            loc = _locate(stmt.quote, passages[n - 1])
            if loc:
                placed.append((n, loc))
    repaired: list[str] = []
    if not placed:
        for n, p in enumerate(passages, start=1):
            loc = _locate(stmt.quote, p)
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
    if any(x not in have for x in text_numbers) or not text or (asks_number and not text_numbers and have):
        text = _compact(Passage.of(passages[placed[0][0] - 1].hit.model_copy(
            update={"text": placed[0][1][2], "start": placed[0][1][0], "end": placed[0][1][1]})).text)
        repaired.append("text")
        report.text_repaired += 1
    citations = []
    for n, (start, end, quote) in placed:
        h = passages[n - 1].hit
        citations.append(Citation(n=n, doc_id=h.doc_id, source_file=h.source_file, start=start, end=end, quote=quote))
    report.kept += 1
    return Verified(text=text, citations=citations, repaired=repaired)


def _periods(text: str) -> set[str]:
    t = _simplify(text)
    found = {p.removeprefix("第") for p in _PERIODS if p in t}
    found |= {f"{a}-{b}月" for a, b in _MONTH_RANGE.findall(t)}
    return found


def evidence_fits(question: str, verified: Sequence[Verified], passages: Sequence[Passage],
                  titles: Sequence[str] = (), catalog: Catalog | None = None) -> str:
    """Why the verified evidence does not answer the question ('' when it does).

    Checks that need no model: a question asking for a number needs a number in a quote;
    a unit asked for (多少亿元) must appear with a number; a period the question names
    (全年, 一季度, 1-9月) must be the period of a cited passage, not another one. With the
    catalog, the figures a quote states must be of the kind asked: a target does not answer
    what was achieved (上半年完成投资多少 vs 完成投资238亿元以上), nor an achievement a target.
    """
    q = _simplify(question)
    quotes = "".join(_compact(normalize(c.quote)[0].text) for v in verified for c in v.citations)
    cited = {c.n for v in verified for c in v.citations}
    context = "".join(passages[n - 1].text + (titles[n - 1] if n - 1 < len(titles) else "") for n in cited)
    asks_number = bool(_ASKS_NUMBER.search(q))
    if asks_number and not numbers_in(quotes):
        return "引用的原文中没有问题所问的数字"
    m = _ASKED_UNIT.search(q)
    if m and not re.search(r"\d\s*" + re.escape(m.group(1)), quotes):
        return f"引用的原文中没有以“{m.group(1)}”计的数字"
    if asks_number and catalog is not None:
        kinds = {f.kind for v in verified for c in v.citations for f in catalog.figures_in(c.doc_id, c.start, c.end)}
        if kinds and kinds <= {"target"} and not _ASKS_PLAN.search(q):
            return "引用的原文是目标数，问题问的是实际情况"
        if kinds and kinds <= {"actual", "baseline"} and _ASKS_PLAN.search(q) and not _ASKS_ACTUAL.search(q):
            return "引用的原文是实际完成数，问题问的是目标或计划"
        # what the quoted figures are about (their names in the records) must be what is
        # asked: 进出口总额 is not answered by 社会消费品零售总额; a named item is its own subject
        names = [_simplify(f.name) for v in verified for c in v.citations
                 for f in catalog.figures_in(c.doc_id, c.start, c.end) if f.name]
        subject = [t for t in content_terms(q, catalog) if t not in _GENERIC and t not in _MEASURE_WORDS]
        if names and subject and not (_ITEM_NO.search(q) or _QUOTED.search(q)) and not any(
                t in n or n in t for t in subject for n in names if len(n) >= 2):
            return "引用的数字说的不是问题所问的指标"
    asked = _periods(q)
    if asked:
        stated = _periods(context)
        if not asked & stated:
            return "引用的原文说的不是问题所问的时期"
    return ""


# ----------------------------------------------------------------------------- records


def _item_label(catalog: Catalog, rec: DocumentRecord, it: TaskItem) -> str:
    no = f"第{it.seq_no}项" if it.seq_no is not None else (it.heading or it.item_id.split("#")[-1])
    return no


def _assignment_span(it: TaskItem, names: Sequence[str], original: str) -> tuple[int, int] | None:
    spans = [s for ld in it.leaders if ld.name in names for s in [ld.span]]
    spans += [s for u in it.units if u.name in names or u.canonical in names for s in u.spans]
    if not spans:
        return None
    a, b = min(s.start for s in spans), max(s.end for s in spans)
    # widen to the printed assignment clause, e.g. （责任领导：庄金才、刘洪明；责任单位：…）
    opens = [original.rfind(ch, max(0, a - 24), a) for ch in "（("]
    closes = [c for c in (original.find(ch, b, b + 80) for ch in "）)") if c >= 0]
    if max(opens) >= 0 and closes and "\n\n" not in original[max(opens):min(closes)]:
        a, b = max(opens), min(closes) + 1
    return a, b


def select_items(catalog: Catalog, p: Plan, store=None) -> list[tuple[DocumentRecord, TaskItem]]:
    """Items matching the plan's record filters (leader, unit and roles, status, documents)."""
    if store is not None:
        try:
            from llmstruct.records import query_items
        except ImportError:
            query_items = None
        if query_items is not None:
            return _store_items(store, query_items, catalog, p)
    out = []
    for rec in catalog.records.values():
        if p.doc_ids and rec.doc_id not in p.doc_ids:
            continue
        for it in rec.items:
            if p.leader and p.leader not in [ld.name for ld in it.leaders]:
                continue
            if p.unit:
                roles = [u.role for u in it.units if p.unit in (u.canonical, u.name)]
                if not roles or (p.roles and not set(roles) & set(p.roles)):
                    continue
            if p.status and it.status != p.status:
                continue
            out.append((rec, it))
    return out


def _store_items(store, query_items, catalog: Catalog, p: Plan) -> list[tuple[DocumentRecord, TaskItem]]:
    found: dict[str, tuple[DocumentRecord, TaskItem]] = {}
    for doc in p.doc_ids or [None]:
        for role in p.roles or [None]:
            for row in query_items(store, unit=p.unit, role=role, leader=p.leader, status=p.status, doc_id=doc):
                item_id = getattr(row, "item_id", None) or (row.get("item_id") if isinstance(row, dict) else None)
                got = catalog.item(item_id) if item_id else None
                if got:
                    found[item_id] = got
    return sorted(found.values(), key=lambda x: (x[0].doc_id, x[1].seq_no or 0))


def records_answer(question: str, p: Plan, catalog: Catalog, store=None) -> Answer | None:
    """Count/list answers computed from the structured records, every item cited; None when
    the plan has nothing the records can filter by."""
    if not (p.leader or p.unit or p.status):
        return None
    items = select_items(catalog, p, store)
    if not items:
        return Answer(question=question, answer=REFUSAL, refused=True)
    names = [n for n in (p.leader, p.unit) if n]
    if p.unit:
        names += [name for name, canon in catalog.units.items() if canon == p.unit]
    citations, labels = [], []
    for n, (rec, it) in enumerate(items, start=1):
        original = catalog.texts.get(rec.doc_id)
        span = _assignment_span(it, names, original) if original else None
        if span is None and original is not None and it.task.spans:
            s = it.task.spans[0]
            span = (s.start, min(s.end, s.start + 40))
        if span is None or original is None:
            continue
        a, b = span
        citations.append(Citation(n=n, doc_id=rec.doc_id, source_file=rec.source_file, start=a, end=b, quote=original[a:b]))
        labels.append(f"{_item_label(catalog, rec, it)}[{n}]")
    who = p.leader or p.unit or ""
    role = {"lead": "牵头", "responsible": "负责", "cooperating": "配合", "reporting": "报送"}
    how = "或".join(role[r] for r in p.roles) if p.roles else ("作为责任领导" if p.leader else "参与")
    docs = {rec.doc_id for rec, _ in items}
    where = "、".join(catalog.docs[d].place or d for d in sorted(docs))
    text = f"按结构化记录，{where}文件中{who}{how}的任务共{len(items)}项：" + "、".join(labels) + "。"
    return Answer(question=question, answer=text, refused=False, citations=citations)


_ASKS_LEADER = re.compile(r"责任领导|分管领导|哪位领导|领导是谁")
_ASKS_UNITS = re.compile(r"责任单位|牵头|负责|配合单位|哪个部门|哪些部门|哪个单位|哪些单位")
_ASKS_PROGRESS = re.compile(r"进展|进度|完成情况|落实情况|推进情况|完成了")


@dataclass(frozen=True)
class ItemFacts:
    """What the records say about the one item a question names (第N项 of one report)."""

    record: DocumentRecord
    item: TaskItem | None
    missing: str = ""


def item_facts(p: Plan, catalog: Catalog) -> ItemFacts | None:
    """The named item and, when the question asks for a field the item does not have
    (no 责任领导 printed, no 进展情况, no units), why it cannot be answered."""
    if p.item_no is None or len(p.doc_ids) != 1 or p.doc_ids[0] not in catalog.records:
        return None
    rec = catalog.records[p.doc_ids[0]]
    item = next((it for it in rec.items if it.seq_no == p.item_no), None)
    q = _simplify(p.standalone)
    if item is None:
        return ItemFacts(rec, None, f"{catalog.docs[rec.doc_id].label}中没有第{p.item_no}项")
    if _ASKS_LEADER.search(q) and not item.leaders:
        return ItemFacts(rec, item, f"第{p.item_no}项没有列出责任领导")
    if _ASKS_UNITS.search(q) and not item.units and not _ASKS_LEADER.search(q):
        return ItemFacts(rec, item, f"第{p.item_no}项没有标注牵头或负责单位")
    if _ASKS_PROGRESS.search(q) and not item.progress and not (_ASKS_LEADER.search(q) or _ASKS_UNITS.search(q)):
        return ItemFacts(rec, item, f"第{p.item_no}项没有进展情况")
    return ItemFacts(rec, item)


def assignment_answer(question: str, p: Plan, facts: ItemFacts, catalog: Catalog) -> Answer | None:
    """Who leads / which units, for a named item, read from its record and cited at the
    spans the names were read from; None when the question asks for something else."""
    q = _simplify(p.standalone)
    it = facts.item
    original = catalog.texts.get(facts.record.doc_id)
    if it is None or original is None or not (_ASKS_LEADER.search(q) or _ASKS_UNITS.search(q)):
        return None
    if _ASKS_PROGRESS.search(q) or _ASKS_NUMBER.search(q):
        return None
    parts: list[str] = []
    citations: list[Citation] = []

    def cite(spans) -> str:
        a, b = min(sp.start for sp in spans), max(sp.end for sp in spans)
        n = len(citations) + 1
        citations.append(Citation(n=n, doc_id=facts.record.doc_id, source_file=facts.record.source_file,
                                  start=a, end=b, quote=original[a:b]))
        return f"[{n}]"

    if _ASKS_LEADER.search(q) and it.leaders:
        parts.append("责任领导为" + "、".join(ld.name for ld in it.leaders) + cite([ld.span for ld in it.leaders]))
    role_zh = {"lead": "牵头单位", "responsible": "责任单位", "cooperating": "配合单位", "reporting": "报送单位"}
    if _ASKS_UNITS.search(q):
        for role in ("lead", "responsible", "cooperating"):
            units = [u for u in it.units if u.role == role]
            if units:
                parts.append(f"{role_zh[role]}为" + "、".join(u.name for u in units)
                             + cite([sp for u in units for sp in u.spans]))
    if not parts:
        return None
    label = f"第{it.seq_no}项" if it.seq_no is not None else it.item_id
    return Answer(question=question, answer=f"{label}：" + "；".join(parts) + "。", refused=False, citations=citations)


# ----------------------------------------------------------------------------- answering


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: a draft to show, or the final verified answer."""

    kind: Literal["status", "draft", "final"]
    text: str = ""
    answer: Answer | None = None
    passages: tuple[Hit, ...] = ()
    seconds: float = 0.0
    reason: str = ""


def _refused(question: str) -> Answer:
    return Answer(question=question, answer=REFUSAL, refused=True)


def compose(question: str, verified: Sequence[Verified]) -> Answer:
    """Final answer text: each statement followed by its citation marks, numbered 1, 2, ...
    in order of first use (the same quote cited twice keeps one number)."""
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
    return Answer(question=question, answer="\n".join(lines), refused=False, citations=cites)


def _token_stream(backend, prompt: str, schema: type[Strict], max_new_tokens: int, prefix: str = "") -> Iterator[str]:
    """Text pieces of one constrained generation: streamed when the backend can (reusing
    the prefilled ``prefix``), otherwise the whole output at once."""
    own = getattr(backend, "generate_json_stream", None)
    if callable(own):
        yield from own(prompt, schema, max_new_tokens, prefix=prefix)
        return
    yield backend.generate_json([prompt], schema, max_new_tokens)[0].text


_FIELD = re.compile(r'"(quote|text)":"((?:[^"\\]|\\.)*)')


def _draft(partial: str) -> str:
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


@dataclass
class Asker:
    """Everything needed to answer: a catalog (records + texts), optionally a store and a
    backend. The CLI and the web app are thin layers over this."""

    catalog: Catalog
    backend: Any = None
    store: Any = None
    use_model_plan: bool = False
    max_new_tokens: int = 200
    last_report: VerifyReport = field(default_factory=VerifyReport)
    last_plan: Plan | None = None
    last_passages: list[Hit] = field(default_factory=list)

    def plan(self, question: str, history: Sequence[str] = ()) -> Plan:
        return plan(question, history, self.catalog, self.backend if self.use_model_plan else None)

    def ask(self, question: str, history: Sequence[str] = (), filters: dict[str, str] | None = None) -> Answer:
        final = None
        for ev in self.stream(question, history, filters):
            if ev.kind == "final":
                final = ev.answer
        assert final is not None
        return final

    def stream(self, question: str, history: Sequence[str] = (), filters: dict[str, str] | None = None) -> Iterator[StreamEvent]:
        """Events: status lines, drafts while the model copies evidence, then the final answer."""
        t0 = time.perf_counter()
        question = question.strip()
        self.last_report = VerifyReport()
        if not question:
            yield StreamEvent("final", answer=_refused(question), seconds=0.0)
            return
        p = self.plan(question, history)
        if filters:
            p = _apply_filters(p, filters, self.catalog)
        self.last_plan = p
        if p.intent in ("count", "list"):
            rec = records_answer(question, p, self.catalog, self.store)
            if rec is not None:
                self.last_passages = []
                yield StreamEvent("final", answer=rec, seconds=time.perf_counter() - t0)
                return
        facts = item_facts(p, self.catalog)
        if facts is not None and facts.missing:
            self.last_report.refusal_reason = facts.missing
            self.last_passages = []
            yield StreamEvent("final", answer=_refused(question), seconds=time.perf_counter() - t0, reason=facts.missing)
            return
        if facts is not None:
            direct = assignment_answer(question, p, facts, self.catalog)
            if direct is not None:
                self.last_passages = []
                yield StreamEvent("final", answer=direct, seconds=time.perf_counter() - t0)
                return
        several = len(p.doc_ids) >= 2  # two passages per named place, within the prompt's budget
        parts = [] if several else question_parts(p.standalone, self.catalog)
        if parts:  # each part retrieves for itself; the passages are pooled
            hits = _merge_hits([retrieve(_part_plan(p, q), self.catalog, self.store, k=3, filters=filters)
                                for q in parts], MAX_PASSAGES + 1)
        else:
            hits = retrieve(p, self.catalog, self.store, k=min(8, 2 * len(p.doc_ids)) if several else MAX_PASSAGES,
                            filters=filters)
        passages = [Passage.of(h) for h in hits]
        self.last_passages = hits
        terms = p.keywords or content_terms(p.standalone, self.catalog)
        strength = max((coverage(terms, ps.text) for ps in passages), default=0.0)
        if not passages or strength < MIN_COVERAGE:
            reason = f"检索证据不足（问题关键词在原文中的覆盖率 {strength:.2f}）"
            self.last_report.refusal_reason = reason
            yield StreamEvent("final", answer=_refused(question), passages=tuple(hits), seconds=time.perf_counter() - t0,
                              reason=reason)
            return
        yield StreamEvent("status", text=f"检索到 {len(passages)} 段相关原文，正在生成回答…", passages=tuple(hits))
        max_statements = 3 if p.intent == "compare" else 2
        contexts = [passage_header(ps.hit, self.catalog) for ps in passages]
        groups = self._by_part(p, parts, passages, contexts) if parts else self._by_place(p, passages, terms, contexts)
        if groups:
            spec = tuple((tuple(i + 1 for i in g.passages), tuple(c for _, c in g.ranked)) for g in groups)
            schema = grouped_schema(spec)
            prompt, prefix = build_prompt(p.standalone, passages, self.backend, self.catalog, len(spec),
                                          places=[(g.label, quotes) for g, (_, quotes) in zip(groups, spec)],
                                          template=PARTS_PROMPT if parts else PLACES_PROMPT)
            ranked = sorted((x for g in groups for x in g.ranked), key=lambda x: -x[0])
            budget = self.max_new_tokens // 2 * len(spec)
        else:
            ranked = ranked_clauses(passages, terms, p.years, contexts, p.standalone, k=2 + 2 * max_statements)
            options = tuple(c for _, c in ranked)
            schema = answer_schema(tuple(range(1, len(passages) + 1)), max_statements, options)
            prompt, prefix = build_prompt(p.standalone, passages, self.backend, self.catalog, max_statements, options)
            budget = self.max_new_tokens
        raw = ""
        for piece in _token_stream(self.backend, prompt, schema, budget, prefix):
            raw += piece
            draft = _draft(raw)
            if draft:
                yield StreamEvent("draft", text=draft, passages=tuple(hits), seconds=time.perf_counter() - t0)
        report = VerifyReport()
        answer = self.verify(question, p, raw, passages, report, schema, ranked, groups)
        self.last_report = report
        yield StreamEvent("final", answer=answer, passages=tuple(hits), seconds=time.perf_counter() - t0,
                          reason=report.refusal_reason if answer.refused else "")

    def _by_place(self, p: Plan, passages: Sequence[Passage], terms: Sequence[str],
                  contexts: Sequence[str]) -> list[AnswerGroup]:
        """For a question about several places: one group per place that has sentences, in
        the plan's order; ``[]`` when fewer than two places do."""
        out = []
        groups = place_groups(passages, p.doc_ids)
        per = 3 if len(groups) <= 3 else 2  # candidates per place: the prompt stays ≈ one place's size
        for g in groups:
            ranked = ranked_clauses([passages[i] for i in g], terms, p.years, [contexts[i] for i in g],
                                    p.standalone, k=per)
            if ranked:
                doc = self.catalog.docs.get(passages[g[0]].hit.doc_id)
                out.append(AnswerGroup(g, ranked, p.standalone, contexts[g[0]].split("·")[0],
                                       doc.place if doc else ""))
        return out if len(out) >= 2 else []

    def _by_part(self, p: Plan, parts: Sequence[str], passages: Sequence[Passage],
                 contexts: Sequence[str]) -> list[AnswerGroup]:
        """For a question in parts: one group per part, its sentences ranked for that part
        over all the pooled passages; ``[]`` unless every part has sentences."""
        every = list(range(len(passages)))
        out = []
        for q in parts:
            sub = _part_plan(p, q)
            ranked = ranked_clauses(passages, content_terms(q, self.catalog), sub.years, contexts, q, k=3)
            if not ranked:
                return []
            out.append(AnswerGroup(every, ranked, q, q))
        return out

    def verify(self, question: str, p: Plan, raw: str, passages: Sequence[Passage],
               report: VerifyReport | None = None, schema: type[RootModel] | None = None,
               ranked: Sequence[tuple[float, str]] = (),
               groups: Sequence["AnswerGroup"] = ()) -> Answer:
        """Parse the model output (against the schema it was generated under) and keep only
        what the passages support.

        With ``ranked`` (relevance of the offered sentences), a statement quoting a sentence
        far less relevant than the best one is dropped, and an answer left with nothing is
        repaired with the best sentence; the checks of :func:`evidence_fits` then decide.
        With ``groups`` (statement i answering group i: a place, or a part of the question)
        each statement is measured against its own group's best sentence and checked against
        its group's question.
        """
        report = report if report is not None else VerifyReport()
        schema = schema or answer_schema(tuple(range(1, len(passages) + 1)), 3 if p.intent == "compare" else 2)
        try:
            out = schema.model_validate_json(raw).root
        except ValidationError:
            report.refusal_reason = "模型输出不完整（达到长度上限）"
            return _refused(question)
        asks_number = bool(_ASKS_NUMBER.search(_simplify(p.standalone)))
        if out.refuse:
            report.refusal_reason = "模型判断片段不能回答"
            return _refused(question)
        titles = [self.catalog.docs[ps.hit.doc_id].title if ps.hit.doc_id in self.catalog.docs else ""
                  for ps in passages]
        def check(st, g: AnswerGroup, rep: VerifyReport, needs_number: bool) -> tuple[Verified | None, str]:
            """A verified statement, or None with why it does not fit ("" when its quote or
            numbers failed verification itself)."""
            v = verify_statement(st, passages, rep, needs_number)
            if v is None:
                return None, ""
            reason = evidence_fits(g.question, [v], passages, titles, self.catalog)
            if reason:
                return None, reason
            if g.line_prefix and not v.text.startswith(g.line_prefix):  # say which place a line is about
                v.text = f"{g.line_prefix}：{v.text}"
            return v, ""

        def repair(g: AnswerGroup, needs_number: bool, used: set[str]) -> tuple[Verified | None, str]:
            """The group's best-ranked sentences, as code-made statements, until one passes."""
            why = ""
            for _, top in [x for x in g.ranked if x[1] not in used][:REPAIR_TRIES]:
                n = next((k for k, ps in enumerate(passages, 1) if _locate(top, ps)), None)
                v, reason = check(SimpleStatement(top, top, [n]), g, VerifyReport(), needs_number) if n else (None, "")
                if v is not None:
                    report.best_sentence_used += 1
                    used.add(top)
                    return v, ""
                why = why or reason or NOTHING_VERIFIED
            return None, why

        verified: list[Verified] = []
        why = ""
        if groups:  # statement i answers group i; a group whose statement fails gets its best sentence
            used: set[str] = set()
            for st, g in zip(out.statements, groups):
                needs_number = bool(_ASKS_NUMBER.search(_simplify(g.question)))
                relevance = {c: r for r, c in g.ranked}
                best = max(relevance.values(), default=0.0)
                v, reason = None, ""
                if st.quote in used or relevance.get(st.quote, best) < RELEVANCE_SHARE * best:
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
        else:
            whole = AnswerGroup(list(range(len(passages))), list(ranked), p.standalone, "")
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
            report.refusal_reason = why or NOTHING_VERIFIED
            return _refused(question)
        return compose(question, verified)


def _apply_filters(p: Plan, filters: dict[str, str], catalog: Catalog) -> Plan:
    """UI/CLI filters narrow the plan: a document, a region, a year, a unit or a status."""
    upd: dict[str, Any] = {}
    if filters.get("doc_id"):
        upd["doc_ids"] = [filters["doc_id"]]
    elif filters.get("region") or filters.get("year"):
        places = [filters["region"]] if filters.get("region") else p.regions
        years = [filters["year"]] if filters.get("year") else p.years
        docs = catalog.docs_for(places, years) if places else [
            d.doc_id for d in catalog.docs.values() if d.period in years]
        upd["doc_ids"] = docs
    if filters.get("unit"):
        upd["unit"] = catalog.units.get(filters["unit"], filters["unit"])
    if filters.get("status"):
        upd["status"] = filters["status"]
    return p.model_copy(update=upd) if upd else p


def store_counts(store: Any) -> dict:
    """The store's counts as a dict ({} when it cannot say)."""
    try:
        c = store.counts()
    except Exception:
        return {}
    return c if isinstance(c, dict) else dict(getattr(c, "__dict__", {}) or {})


def index_paths(store: Any, paths: Sequence[Path], log=print) -> None:
    """Structure files (rules) and index them into the store; unchanged files are skipped."""
    done = {"n": 0}

    def progress(i: int, total: int) -> None:
        if total and (i == total or i - done["n"] >= max(1, total // 5)):
            done["n"] = i
            log(f"向量化 {i}/{total} 段")

    report = store.index_paths([Path(p) for p in paths], progress=progress)
    for r in getattr(report, "results", []):
        log(f"{r.source_file} → {r.doc_id}：{r.action}（{r.items} 条任务，{r.chunks} 段）")
    for e in getattr(report, "errors", []):
        log(f"索引失败：{e}")


def catalog_from_store(store: Any, folders: Sequence[Path]) -> Catalog:
    """Records from the store, with each source file's original text (looked up by file
    name in ``folders``) so that spans can be sliced and shown."""
    from llmstruct.formats import read_source

    records = list(store.records())
    by_name: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for f in folder.iterdir():
                if f.is_file():
                    by_name.setdefault(f.name, f)
    cache: dict[Path, str] = {}
    texts: dict[str, str] = {}
    for r in records:
        path = by_name.get(Path(r.source_file).name)
        if path is None:
            continue
        if path not in cache:
            cache[path] = read_source(path).text
        texts[r.doc_id] = cache[path]
    return Catalog(records, texts)


def open_corpus(seeds_dir: Path | None = None, data_dir: Path | None = None, log=print,
                index_if_empty: bool = True) -> tuple[Catalog, Any]:
    """The catalog and the store: the store when ``llmstruct.store`` is available (seeds/
    indexed into an empty one when ``index_if_empty``), else the seeds structured in memory
    (keyword retrieval)."""
    from llmstruct.config import get_settings

    s = get_settings()
    seeds_dir = Path(seeds_dir or s.seeds_dir)
    data_dir = Path(data_dir or s.data_dir)
    try:
        from llmstruct.store import open_store
    except ImportError:
        open_store = None
    if open_store is None:
        log("未找到向量库模块（llmstruct.store），在内存中结构化 seeds/ …")
        catalog = load_catalog([seeds_dir] + ([data_dir / "uploads"] if (data_dir / "uploads").is_dir() else []))
        log(f"文件库：{len(catalog.records)} 份报告（内存，关键词检索）")
        return catalog, None
    store = open_store()
    if not store_counts(store).get("documents") and index_if_empty:
        log(f"首次启动：正在为 {seeds_dir} 建立索引（结构化并向量化，约需数分钟）…")
        index_paths(store, [seeds_dir], log)
    catalog = catalog_from_store(store, [seeds_dir, data_dir / "uploads"])
    log(f"文件库：{len(catalog.records)} 份报告")
    return catalog, store


def load_catalog(paths: Iterable[str | Path]) -> Catalog:
    """A catalog from files structured on the spot (rules-only): for tests and for running
    without a store."""
    from llmstruct.pipeline import expand_paths, structure_file

    records, texts = [], {}
    for f in expand_paths([Path(p) for p in paths]):
        s = structure_file(f)
        for r in s.records:
            records.append(r)
            texts[r.doc_id] = s.source.text
    return Catalog(records, texts)


__all__ = [
    "REFUSAL", "catalog_from_store", "index_paths", "open_corpus", "store_counts", "Asker", "Catalog", "Passage", "Plan", "StreamEvent", "VerifyReport", "answer_schema",
    "bm25_rank", "catalog_hits", "coverage", "evidence_fits", "item_hits", "load_catalog", "numbers_in",
    "plan", "records_answer", "resolve_follow_up", "retrieve", "rule_plan", "verify_statement",
]
