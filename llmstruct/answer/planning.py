"""Question planning: what a question asks (intent, keywords) and where to look (places, years,
documents, item, leader, unit, status), linked against the catalog; follow-ups and parts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from llmstruct.answer.catalog import Catalog
from llmstruct.answer.terms import (
    _ITEM_NO,
    _MEASURE_WORDS,
    _YEAR,
    content_terms,
    simplify,
)
from llmstruct.models.base import StructuredBackend
from llmstruct.schema import Status, Strict, UnitRole
from llmstruct.text.prompts import load_template
from llmstruct.vocab import VOCAB

PLAN_PROMPT = "plan_question.v1"

MAX_PARTS = 3

PLAN_MAX_TOKENS = 60

Intent = Literal["lookup", "list", "count", "compare"]


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


_COUNT_CUE = re.compile(r"(几|多少)\s*(项(?!目)|份|条|个(?:任务|单位|部门|镇|街道|镇街|地区|文件|报告|指标))|有几|共有几")

_LIST_CUE = re.compile(r"哪些(任务|单位|部门|镇|街道|镇街|报告|文件|项)|列出|列举")

_COMPARE_CUE = VOCAB.cue("compare")

_ROLE_CUES: tuple[tuple[str, UnitRole], ...] = VOCAB.role_question_cues  # type: ignore[assignment]

_STATUS_CUES: tuple[tuple[str, Status], ...] = VOCAB.status_question_cues  # type: ignore[assignment]


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
        for name, place, _ in catalog.place_names:
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
    q = simplify(standalone)
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


def plan(question: str, history: Sequence[str] = (), catalog: Catalog | None = None,
         backend: StructuredBackend | None = None) -> Plan:
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
    q = simplify(rules.standalone)
    keywords = [k.strip() for k in mp.keywords if k.strip() and simplify(k.strip()) in q]
    intent: Intent = mp.intent
    source: Literal["model", "model+rules"] = "model"
    decisive = rules.intent != "lookup"
    if decisive and intent != rules.intent:
        intent, source = rules.intent, "model+rules"
    elif not decisive and intent in ("count", "list") and not (rules.leader or rules.unit):
        # nothing in the records to count by: a count the records cannot answer is a lookup
        intent, source = "lookup", "model+rules"
    return rules.model_copy(update={"intent": intent, "keywords": keywords or rules.keywords, "source": source})


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


_ASKING_END = re.compile(r"(?:分别)?(?:是什么|是多少|有多少|是哪些|有哪些|有什么|多少|几何)$|得?(?:怎么样|怎样|如何)$|[呢吗吧]$")


def gap_topic(part: str) -> str:
    """What a part of a question asks about, as a short phrase naming it when nothing
    answers it: 固定资产投资的目标是什么？ → 固定资产投资的目标; 1-5月完成得怎么样 → 1-5月完成情况."""
    t = re.sub(r"[？?。！!，,\s]+$", "", part.strip())
    for _ in range(2):
        m = _ASKING_END.search(t)
        if not m or m.start() == 0:
            break
        t = t[:m.start()].rstrip("，,的 ") + ("情况" if re.search("怎么样|怎样|如何", m.group()) else "")
    return t.replace("，", "").replace(",", "")


def part_topics(question: str, catalog: Catalog | None = None) -> list[str]:
    """For each part of :func:`question_parts`, what to name when it has no verified
    statement: the part as asked, led by the first part's subject when it has none of its own
    (1-5月完成得怎么样 → 固定资产投资1-5月完成情况)."""
    parts = [x.strip() for x in re.split(r"[？?]", question) if len(x.strip()) >= 3]
    led = question_parts(question, catalog)
    if not led:
        return []
    subject = set(content_terms(parts[0], catalog))
    out = [gap_topic(parts[0])]
    for raw, full in zip(parts[1:], led[1:]):
        own = [t for t in content_terms(raw, catalog) if t not in _MEASURE_WORDS and t not in subject
               and not re.fullmatch(r"[\d\-]+[年月]?", t)]
        out.append(gap_topic(raw if own else full))
    return out


def part_plan(p: Plan, part: str) -> Plan:
    """The plan for one part: its own text, keywords and years (the whole question's years
    when the part names none)."""
    years = re.findall(r"((?:19|20)\d{2})年", part)
    return p.model_copy(update={"standalone": part, "keywords": [], "years": list(dict.fromkeys(years)) or p.years})


def apply_filters(p: Plan, filters: dict[str, str], catalog: Catalog) -> Plan:
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
