"""The model pass: a local LLM labels what rules found, under a grammar built from pydantic.

Rules find every figure (number, unit, qualifier, change, span) and every progress block;
the model writes only what needs reading: each figure's name and kind, and each progress
block's status with the verbatim cue that supports it. Its output is decoded under a JSON
grammar whose list lengths are fixed to what rules found, so it cannot invent or drop a
figure. Code then checks the output against the text: a name not found near its figure
(or one that repeats the number) falls back to the rule-read name, a cue not found in its block voids the status, and
kinds the text marks (预计 = forecast, task text = target) are set by rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pydantic import ConfigDict, Field, conlist, create_model

from llmstruct.figures import Figure, find_figures, rule_name
from llmstruct.grounding import align
from llmstruct.normalize import NormText
from llmstruct.prompting import load_template
from llmstruct.schema import Change, Indicator, IndicatorKind, Progress, Status, Strict, TaskItem

PROMPT = "label_item.v1"
MAX_FIGURES = 16
MAX_PROMPT_CHARS = 1800


class FigureLabel(Strict):
    name: str = Field(max_length=12)
    kind: IndicatorKind


class StatusLabel(Strict):
    cue: str = Field(max_length=12)
    status: Status


@lru_cache(maxsize=256)
def labels_schema(n_figures: int, n_progress: int) -> type[Strict]:
    """Output schema with list lengths fixed to what rules found (cached: one grammar each)."""
    model = create_model(
        f"ItemLabels_{n_figures}_{n_progress}",
        __config__=ConfigDict(extra="forbid", frozen=True),
        figures=(conlist(FigureLabel, min_length=n_figures, max_length=n_figures), ...),
        progress=(conlist(StatusLabel, min_length=n_progress, max_length=n_progress), ...),
    )
    return model  # type: ignore[return-value]


@dataclass
class FigureSite:
    figure: Figure
    where: str  # "task" or the index of the progress block
    floor: int  # clean start of the passage, names are looked for after it


@dataclass
class LabelJob:
    """Everything needed to ask about one item and to check the answer."""

    item: TaskItem
    sites: list[FigureSite]
    system: str
    user: str
    key: str = ""


def _ranges(nt: NormText, spans) -> list[tuple[int, int]]:
    return [(nt.locate(s.start), nt.locate(s.end)) for s in spans]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def build_job(nt: NormText, item: TaskItem, model_id: str = "") -> LabelJob:
    """The prompt for one item and the figure sites it refers to."""
    sites: list[FigureSite] = []
    for a, b in _ranges(nt, item.task.spans):
        sites += [FigureSite(f, "task", a) for f in find_figures(nt, a, b)]
    for k, p in enumerate(item.progress):
        for a, b in _ranges(nt, p.text.spans):
            sites += [FigureSite(f, str(k), a) for f in find_figures(nt, a, b)]
    sites = sites[:MAX_FIGURES]
    lines = []
    for n, s in enumerate(sites, start=1):
        ctx_start = max(s.floor, s.figure.start - 18)
        ctx = nt.text[ctx_start:s.figure.end].replace("\n", "").replace(" ", "")
        lines.append(f"{n}. {s.figure.evidence(nt).replace(' ', '')}（…{ctx}）")
    progress = "\n".join(
        f"({k + 1}) {(p.reporting_unit.name + '：') if p.reporting_unit else ''}{p.text.text}"
        for k, p in enumerate(item.progress)
    ) or "（无）"
    tpl = load_template(PROMPT)
    system, user = tpl.render(
        task=_clip(item.task.text, 600),
        progress=_clip(progress, MAX_PROMPT_CHARS),
        figures="\n".join(lines) or "（无）",
        n_figures=len(sites),
        n_progress=len(item.progress),
    )
    job = LabelJob(item=item, sites=sites, system=system, user=user)
    job.key = hashlib.sha256(json.dumps([tpl.version, model_id, system, user], ensure_ascii=False).encode()).hexdigest()
    return job


def parse_labels(job: LabelJob, text: str) -> Strict:
    """Validate a model output against the job's exact schema (raises ValidationError)."""
    return labels_schema(len(job.sites), len(job.item.progress)).model_validate_json(text)


@dataclass
class ApplyReport:
    names_from_model: int = 0
    names_from_rules: int = 0
    kinds_from_rules: int = 0
    cues_grounded: int = 0
    cues_rejected: int = 0
    indicators: int = 0
    indicators_grounded: int = 0


def apply_labels(nt: NormText, job: LabelJob, labels: Strict | None, report: ApplyReport) -> TaskItem:
    """The item with indicators and statuses filled, every value checked against the text."""
    item = job.item
    fig_labels = list(getattr(labels, "figures", []) or [])
    status_labels = list(getattr(labels, "progress", []) or [])
    targets: list[Indicator] = []
    per_block: dict[str, list[Indicator]] = {}
    for n, site in enumerate(job.sites):
        label = fig_labels[n] if n < len(fig_labels) else None
        ind = _indicator(nt, site, label, report)
        if site.where == "task":
            targets.append(ind)
        else:
            per_block.setdefault(site.where, []).append(ind)
    progress = []
    for k, p in enumerate(item.progress):
        status: Status | None = None
        cue_span = None
        if k < len(status_labels):
            lab = status_labels[k]
            status, cue_span = _grounded_status(nt, p, lab, report)
        progress.append(p.model_copy(update={"status": status, "status_cue": cue_span,
                                             "indicators": per_block.get(str(k), [])}))
    return item.model_copy(update={"targets": targets, "progress": progress, "status": overall_status(progress)})


def _indicator(nt: NormText, site: FigureSite, label: FigureLabel | None, report: ApplyReport) -> Indicator:
    fig = site.figure
    clause_start = _clause_start(nt, site.floor, fig.start)
    evidence = nt.span(clause_start, fig.end)
    name = ""
    if label and label.name.strip() and not re.search(r"[\d%（）()]", label.name):
        hit = align(label.name, nt, clause_start, fig.end)
        if hit is not None and hit.alignment in ("exact", "normalized"):
            name = label.name.strip()
            report.names_from_model += 1
    if not name:
        name = rule_name(nt, fig, site.floor)[:40]
        report.names_from_rules += 1
    kind: IndicatorKind = label.kind if label else "actual"
    marked = _marked_kind(nt, site, clause_start)
    if marked and marked != kind:
        kind = marked
        report.kinds_from_rules += 1
    report.indicators += 1
    if fig.number.replace(",", "") in evidence.text.replace(",", "").replace(" ", ""):
        report.indicators_grounded += 1
    change = Change(value=fig.value, unit=fig.unit, direction=fig.change) if fig.change else None
    return Indicator(
        evidence=evidence, name=name, value=fig.value, value_text=fig.number, unit=fig.unit,
        base_value=fig.base_value, qualifier=fig.qualifier, kind=kind, change=change, alignment="rule",
    )


def _clause_start(nt: NormText, floor: int, pos: int) -> int:
    lo = max(floor, pos - 40)
    cut = max((nt.text.rfind(ch, lo, pos) for ch in "，。；：\n"), default=-1)
    return cut + 1 if cut >= lo else lo


def _marked_kind(nt: NormText, site: FigureSite, clause_start: int) -> IndicatorKind | None:
    """Kinds the text marks itself: figures in a task's text are targets, 预计 marks a forecast."""
    if site.where == "task":
        return "target"
    if "预计" in nt.text[clause_start:site.figure.start] or "预计" in nt.text[max(site.floor, clause_start - 12):clause_start]:
        return "forecast"
    return None


def _grounded_status(nt: NormText, p: Progress, lab: StatusLabel, report: ApplyReport):
    cue = lab.cue.strip()
    if not cue:
        report.cues_rejected += 1
        return ("unknown" if lab.status == "unknown" else None), None
    for a, b in _ranges(nt, p.text.spans):
        hit = align(cue, nt, a, b)
        if hit is not None and hit.alignment in ("exact", "normalized"):
            report.cues_grounded += 1
            return lab.status, hit.span
    report.cues_rejected += 1
    return None, None


def overall_status(progress: list[Progress]) -> Status | None:
    """One status for the item: the worst stated status of its progress entries."""
    order = ["suspended", "behind", "not_started", "in_progress", "planned", "completed", "unknown"]
    stated = [p.status for p in progress if p.status]
    if not stated:
        return None
    return min(stated, key=order.index)


__all__ = ["ApplyReport", "LabelJob", "apply_labels", "build_job", "labels_schema", "parse_labels"]
