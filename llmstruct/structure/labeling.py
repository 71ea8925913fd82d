"""The model pass: a local LLM labels what rules found, under a grammar built from pydantic.

Rules find every figure (number, unit, qualifier, change, span), read its name from the
clause before it, and mark the kinds the text states (a task's own figures are targets,
预计 marks a forecast, a 回顾 section reports actuals). Rules also decide statuses that a
decisive word states (暂低于, 暂缓, 已全部完成). The model writes only the rest: a kind for
each figure left open, and a status with its verbatim cue for each progress entry left
open. Its output is decoded under a JSON grammar whose list lengths are fixed to what was
asked, so it cannot invent or drop a figure, and it writes a few tokens per figure. Code
then checks the output against the text: a cue not found in its entry voids the model's
status and the rule default stands.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import get_args

from pydantic import ConfigDict, Field, conlist, create_model

from llmstruct.schema import (
    Change,
    Indicator,
    IndicatorKind,
    Progress,
    StatedStatus,
    Status,
    Strict,
    TaskItem,
)
from llmstruct.structure.assessment import assess_item
from llmstruct.structure.figures import Figure, find_figures, rule_name
from llmstruct.structure.layout import in_progress_report
from llmstruct.structure.rules import overall_status
from llmstruct.text.grounding import align
from llmstruct.text.normalize import NormText, to_simplified
from llmstruct.text.prompts import load_template
from llmstruct.vocab import VOCAB, words_pattern

PROMPT = "label_item.v2"
MAX_FIGURES = 24
MAX_PROMPT_CHARS = 1800
_REVIEW = re.compile(r"回顾|过去一年|过去五年|(?:完成|执行|落实|进展|推进)情况")
_PLAN = re.compile(r"安排|目标|计划|重点工作|我们将|新的一年|展望")
# Words before a figure that make it a plan even in a progress report (下半年力争增长8%).
_PLAN_LEAD = re.compile(r"力争|争取|确保|计划|下半年|下一步|明年|预期目标[为是]|目标[为是]")


class StatusLabel(Strict):
    cue: str = Field(max_length=12)
    status: StatedStatus


@lru_cache(maxsize=256)
def labels_schema(n_kinds: int, n_progress: int) -> type[Strict]:
    """Output schema with list lengths fixed to what is asked (cached: one grammar each)."""
    model = create_model(
        f"ItemLabels_{n_kinds}_{n_progress}",
        __config__=ConfigDict(extra="forbid", frozen=True),
        progress=(conlist(StatusLabel, min_length=n_progress, max_length=n_progress), ...),
        kinds=(conlist(IndicatorKind, min_length=n_kinds, max_length=n_kinds), ...),
    )
    return model  # type: ignore[return-value]


@dataclass
class FigureSite:
    figure: Figure
    where: str  # "task" or the index of the progress block
    floor: int  # clean start of the passage, names are looked for after it
    kind: IndicatorKind | None = None  # set when the text itself marks the kind


@dataclass
class LabelJob:
    """Everything needed to ask about one item and to check the answer."""

    item: TaskItem
    sites: list[FigureSite]
    asked_figures: list[int] = field(default_factory=list)  # indices into ``sites``
    asked_blocks: list[int] = field(default_factory=list)  # indices into ``item.progress``
    system: str = ""
    user: str = ""
    key: str = ""
    cap_factor: int = 1  # a retry gets a larger token cap

    @property
    def needs_model(self) -> bool:
        return bool(self.asked_figures or self.asked_blocks)

    @property
    def schema(self) -> type[Strict]:
        return labels_schema(len(self.asked_figures), len(self.asked_blocks))

    @property
    def max_new_tokens(self) -> int:
        """Enough for the compact answer (≈ 4 tokens a kind, ≈ 16 a status) plus slack."""
        return (24 + 6 * len(self.asked_figures) + 24 * len(self.asked_blocks)) * self.cap_factor


def _ranges(nt: NormText, spans) -> list[tuple[int, int]]:
    return [(nt.locate(s.start), nt.locate(s.end)) for s in spans]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _section_kind(item: TaskItem) -> IndicatorKind | None:
    """Figures of a work report's topic read as actuals in a review, as targets in a plan."""
    head = item.section_path[0] if item.section_path else ""
    if _REVIEW.search(head):
        return "actual"
    if _PLAN.search(head):
        return "target"
    return None


def _marked_kind(nt: NormText, item: TaskItem, site: FigureSite) -> IndicatorKind | None:
    """Kinds the text marks itself: a task's own figures are targets, 预计 marks a forecast,
    and a paragraph of a progress report (上半年…执行情况) states actuals unless its words
    before the figure plan (力争, 下半年)."""
    lead = nt.text[_sentence_start(nt, site.floor, site.figure.start):site.figure.start]
    if "预计" in lead:
        return "forecast"
    if site.where != "task":
        return None
    if item.kind in ("task", "target"):
        return "target"
    kind = _section_kind(item)
    if kind is None and in_progress_report(nt, site.figure.start) and not _PLAN_LEAD.search(lead):
        return "actual"
    return kind


def build_job(nt: NormText, item: TaskItem, model_id: str = "", prompt: bool = True) -> LabelJob:
    """Every figure of the item, and the prompt asking about what rules left open."""
    sites: list[FigureSite] = []
    for a, b in _ranges(nt, item.task.spans):
        sites += [FigureSite(f, "task", a) for f in find_figures(nt, a, b)]
    for k, p in enumerate(item.progress):
        for a, b in _ranges(nt, p.text.spans):
            sites += [FigureSite(f, str(k), a) for f in find_figures(nt, a, b)]
    for site in sites:
        site.kind = _marked_kind(nt, item, site)
    asked_figures = [n for n, s in enumerate(sites) if s.kind is None][:MAX_FIGURES]
    asked_blocks = [k for k, p in enumerate(item.progress) if p.status_cue is None]
    job = LabelJob(item=item, sites=sites, asked_figures=asked_figures, asked_blocks=asked_blocks)
    if not (prompt and job.needs_model):
        return job
    lines = []
    for n, idx in enumerate(asked_figures, start=1):
        site = sites[idx]
        ctx_start = max(site.floor, site.figure.start - 18)
        ctx = nt.text[ctx_start:site.figure.end].replace("\n", "").replace(" ", "")
        lines.append(f"{n}. {site.figure.evidence(nt).replace(' ', '')}（…{ctx}）")
    blocks = "\n".join(
        f"({n}) {(item.progress[k].reporting_unit.name + '：') if item.progress[k].reporting_unit else ''}"
        f"{item.progress[k].text.text}"
        for n, k in enumerate(asked_blocks, start=1)
    ) or "（无）"
    tpl = load_template(PROMPT)
    job.system, job.user = tpl.render(
        task=_clip(item.task.text, 600),
        progress=_clip(blocks, MAX_PROMPT_CHARS),
        figures="\n".join(lines) or "（无）",
        n_figures=len(asked_figures),
        n_progress=len(asked_blocks),
    )
    job.key = hashlib.sha256(
        json.dumps([tpl.version, model_id, job.system, job.user], ensure_ascii=False).encode()
    ).hexdigest()
    return job


def parse_labels(job: LabelJob, text: str) -> Strict:
    """Validate a model output against the job's exact schema (raises ValidationError)."""
    return job.schema.model_validate_json(text)


@dataclass
class ApplyReport:
    kinds_from_model: int = 0
    kinds_from_rules: int = 0
    kinds_uncorroborated: int = 0
    statuses_from_model: int = 0
    statuses_uncorroborated: int = 0
    cues_grounded: int = 0
    cues_rejected: int = 0
    indicators: int = 0
    indicators_grounded: int = 0


# A model label replaces the rule default only when the text corroborates it. Measured on
# the gold (evals/README.md): taken unchecked, the 0.5B's labels lowered status accuracy
# from 92% to 72% and kind F1 from 79% to 64% (it calls 已完成投资3亿元 completed and
# flips kinds); the 1.5B did worse. Words that make each label plausible:
_KIND_WORDS: dict[str, re.Pattern[str]] = {k: words_pattern(VOCAB.kind_corroboration(k)) for k in get_args(IndicatorKind)}
_STATUS_WORDS: dict[str, re.Pattern[str]] = {
    # completed is a pattern, not words: 已完成投资3亿元 is a partial figure, not completion
    "completed": re.compile(r"(全面|全部|已|顺利)(完成|建成|竣工|完工)(?!投资|[^，。；]{0,6}\d)|投入使用|完成(全年|年度)?(目标)?任务的1\d\d"),
    **{s: words_pattern(w) for s in get_args(Status) if (w := VOCAB.status_corroboration(s))},
}  # in_progress is the rule default itself: it needs no corroboration


def apply_labels(nt: NormText, job: LabelJob, labels: Strict | None, report: ApplyReport) -> TaskItem:
    """The item with indicators and statuses filled, every value checked against the text.

    ``labels=None`` gives the rules-only result: open kinds default to ``actual`` for
    progress figures and ``target`` for a task's own, open statuses keep the rule default.
    """
    item = job.item
    kinds = dict(zip(job.asked_figures, getattr(labels, "kinds", []) or []))
    statuses = dict(zip(job.asked_blocks, getattr(labels, "progress", []) or []))
    targets: list[Indicator] = []
    per_block: dict[str, list[Indicator]] = {}
    previous: Indicator | None = None
    for n, site in enumerate(job.sites):
        ind = _indicator(nt, site, kinds.get(n), report)
        if not ind.name and previous is not None and _same_sentence(nt, site, previous):
            # "地区生产总值106亿元，增长13.8%": the second figure is about the same indicator
            ind = ind.model_copy(update={"name": previous.name})
        previous = ind
        if site.where == "task":
            targets.append(ind)
        else:
            per_block.setdefault(site.where, []).append(ind)
    progress = []
    for k, p in enumerate(item.progress):
        update: dict = {"indicators": per_block.get(str(k), [])}
        if k in statuses:
            status, cue_span = _grounded_status(nt, p, statuses[k], report)
            if status is not None:
                update.update(status=status, status_cue=cue_span)
        progress.append(p.model_copy(update=update))
    progress = assess_item(nt, item.model_copy(update={"targets": targets, "progress": progress}))
    return item.model_copy(update={"targets": targets, "progress": progress, "status": overall_status(progress)})


def _indicator(nt: NormText, site: FigureSite, label: IndicatorKind | None, report: ApplyReport) -> Indicator:
    fig = site.figure
    clause_start = _clause_start(nt, site.floor, fig.start)
    evidence = nt.span(clause_start, fig.end)
    default: IndicatorKind = "target" if site.where == "task" else "actual"
    if site.kind is not None:
        kind: IndicatorKind = site.kind
        report.kinds_from_rules += 1
    elif label is not None and (label == default or _KIND_WORDS[label].search(nt.text, clause_start, fig.end + 4)):
        kind = label
        report.kinds_from_model += 1
    else:
        kind = default
        report.kinds_from_rules += 1
        report.kinds_uncorroborated += label is not None
    report.indicators += 1
    if fig.number.replace(",", "") in evidence.text.replace(",", "").replace(" ", ""):
        report.indicators_grounded += 1
    change = Change(value=fig.value, unit=fig.unit, direction=fig.change) if fig.change else None
    return Indicator(
        evidence=evidence, name=rule_name(nt, fig, site.floor)[:40], value=fig.value, value_text=fig.number,
        unit=fig.unit, base_value=fig.base_value, qualifier=fig.qualifier, kind=kind, change=change,
        alignment="rule",
    )


def rules_only(nt: NormText, item: TaskItem) -> TaskItem:
    """The item with every figure as an indicator and kinds/statuses as rules read them."""
    return apply_labels(nt, build_job(nt, item, prompt=False), None, ApplyReport())


def _same_sentence(nt: NormText, site: FigureSite, previous: Indicator) -> bool:
    start = nt.locate(previous.evidence.start)
    return start >= _sentence_start(nt, site.floor, site.figure.start)


def _sentence_start(nt: NormText, floor: int, pos: int) -> int:
    cut = max((nt.text.rfind(ch, floor, pos) for ch in "。；\n"), default=-1)
    return max(floor, cut + 1)


def _clause_start(nt: NormText, floor: int, pos: int) -> int:
    lo = max(floor, pos - 40)
    cut = max((nt.text.rfind(ch, lo, pos) for ch in "，。；：\n"), default=-1)
    return cut + 1 if cut >= lo else lo


def _grounded_status(nt: NormText, p: Progress, lab: StatusLabel, report: ApplyReport):
    """The model's status when its cue is found in the entry and says that status (see
    ``_STATUS_WORDS``); otherwise none, and the rule default stands."""
    cue = lab.cue.strip()
    if not cue:
        return None, None
    for a, b in _ranges(nt, p.text.spans):
        hit = align(cue, nt, a, b)
        if hit is not None and hit.alignment in ("exact", "normalized"):
            report.cues_grounded += 1
            says = _STATUS_WORDS.get(lab.status)
            if says is not None and not says.search(to_simplified(hit.span.text)):
                report.statuses_uncorroborated += 1
                return None, None
            report.statuses_from_model += 1
            return lab.status, hit.span
    report.cues_rejected += 1
    return None, None


__all__ = ["ApplyReport", "LabelJob", "apply_labels", "build_job", "labels_schema", "parse_labels", "rules_only"]
