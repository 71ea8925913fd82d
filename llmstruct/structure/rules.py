"""Rules that fill what the text states explicitly: units and roles, leaders, deadlines.

Rules run before any model and are trusted only for what is written in a fixed form
(``（责任领导：…；责任单位：…）``, ``（X牵头，Y等部门配合）``, table unit cells, ``单位：``
block headers) and for status words that leave no doubt (暂低于, 暂缓, 已全部完成).
Judgement (indicator kinds, statuses without such a word) is left to the model pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from llmstruct.schema import (
    Deadline,
    Named,
    Progress,
    Span,
    Status,
    TaskItem,
    Unit,
    UnitRole,
)
from llmstruct.structure.segmenting import Range, RawItem
from llmstruct.text.normalize import NormText, clean_text
from llmstruct.text.units import canonical_unit
from llmstruct.vocab import VOCAB

_KEY_ROLES: dict[str, UnitRole | None] = VOCAB.clause_key_roles  # type: ignore[assignment]
_TAIL_ROLES: tuple[tuple[str, UnitRole], ...] = VOCAB.role_clause_suffixes  # type: ignore[assignment]
_DEADLINE = re.compile(
    r"(?:20\d{2}年(?:\d{1,2}月)?(?:底|末)?(?:前|以前)|\d{1,2}月(?:底|末)?(?:前|以前)|年内|年底前|年底|上半年|下半年|当年)"
)


def _pieces(nt: NormText, start: int, end: int, separators: str) -> Iterator[Range]:
    """Ranges between separators, trimmed of white space."""
    pos = start
    for m in re.finditer(f"[{separators}]", nt.text[start:end]):
        yield nt.strip(pos, start + m.start())
        pos = start + m.end()
    yield nt.strip(pos, end)


def _name(nt: NormText, r: Range) -> str:
    return re.sub(r"\s+", "", nt.text[r[0]:r[1]])


def parse_unit_clause(nt: NormText, clause: Range) -> tuple[list[Named], list[Unit]]:
    """Leaders and units from ``责任领导：A、B；责任单位：C`` or ``C牵头，D、E等部门配合``."""
    leaders: list[Named] = []
    units: list[Unit] = []
    a, b = clause
    body = nt.text[a:b]
    if re.search(r"(责任领导|责任单位|配合单位|牵头单位|第一责任单位)\s*[：:]", body):
        for part in _pieces(nt, a, b, "；;"):
            key_m = re.match(r"\s*([^：:]{2,8})\s*[：:]", nt.text[part[0]:part[1]])
            if not key_m or key_m.group(1) not in _KEY_ROLES:
                continue
            role = _KEY_ROLES[key_m.group(1)]
            for r in _pieces(nt, part[0] + key_m.end(), part[1], "、，,"):
                if r[1] <= r[0]:
                    continue
                if role is None:
                    leaders.append(Named(name=_name(nt, r), span=nt.span(*r)))
                else:
                    units.append(_unit(nt, [r], role))
        return leaders, units
    for part in _pieces(nt, a, b, "，,；;"):
        text = nt.text[part[0]:part[1]]
        for tail, role in _TAIL_ROLES:
            if text.endswith(tail):
                for r in _pieces(nt, part[0], part[1] - len(tail), "、"):
                    if r[1] > r[0]:
                        units.append(_unit(nt, [r], role))
                break
    return leaders, units


def _unit(nt: NormText, ranges: list[Range], role: UnitRole) -> Unit:
    name = "".join(_name(nt, r) for r in ranges)
    return Unit(name=name, canonical=canonical_unit(name), role=role, spans=[nt.span(*r) for r in ranges])


def deadlines(nt: NormText, ranges: list[Range]) -> list[Deadline]:
    """Deadline phrases written in the task text (年内, 6月底前, 2023年底前 ...)."""
    out = []
    for a, b in ranges:
        for m in _DEADLINE.finditer(nt.text[a:b]):
            span = nt.span(a + m.start(), a + m.end())
            out.append(Deadline(text=m.group(0), span=span))
    return out


# Status words that decide a progress entry on their own, strongest first. 已完成 alone is
# not one of them: "已完成投资3亿元" reports part of a task, not its end.
_STATUS_CUES: list[tuple[Status, re.Pattern[str]]] = [
    ("behind", re.compile(r"暂时?低于|低于全[市省国]|进度滞后|进展滞后|滞后于|暂时?落后|落后于|未达到|未达序时|进展缓慢|进度偏慢")),
    ("suspended", re.compile(r"暂缓|搁置|暂停")),
    ("completed", re.compile(r"全面完成|已全部完成|已完成全部|已完成(?:全年|年度)(?:目标)?任务(?!的)|已完成(?:全年|年度)?(?:目标)?任务的\s*[1-9]\d{2,}(?:\.\d+)?\s*%|已完工|已竣工(?:验收)?(?:并)?投入使用")),
    ("not_started", re.compile(r"尚未启动|未启动|尚未开工")),
    ("in_progress", re.compile(r"正在|有序推进|加快推进|稳步推进|推进中|已开工|已全部开工|完成(?:全年|年度)?(?:目标|任务)?的\d")),
]


def rule_status(nt: NormText, ranges: list[Range]) -> tuple[Status, Span] | None:
    """The status a decisive word in the entry states, with that word's span (strongest wins)."""
    for status, pat in _STATUS_CUES:
        for a, b in ranges:
            m = pat.search(nt.text, a, b)
            if m:
                return status, nt.span(m.start(), m.end())
    return None


def build_item(nt: NormText, raw: RawItem, item_id: str) -> TaskItem:
    """The rules-only record of one segmented item."""
    leaders: list[Named] = []
    units: list[Unit] = []
    if raw.unit_clause:
        leaders, units = parse_unit_clause(nt, raw.unit_clause)
    for cell in raw.unit_cells:
        units.append(_unit(nt, cell, "responsible"))
    progress = []
    known = {u.canonical for u in units}
    for block in raw.progress:
        reporter = None
        if block.unit:
            reporter = Named(name=_name(nt, block.unit), span=nt.span(*block.unit))
            canon = canonical_unit(reporter.name)
            if canon not in known:
                units.append(_unit(nt, [block.unit], "reporting"))
                known.add(canon)
        decided = rule_status(nt, block.ranges)
        # A progress narrative with no decisive word reports work under way; the model
        # pass may overrule this default, never a decisive word.
        progress.append(Progress(reporting_unit=reporter, text=nt.field(block.ranges),
                                 status=decided[0] if decided else "in_progress",
                                 status_cue=decided[1] if decided else None))
    return TaskItem(
        item_id=item_id,
        seq_no=raw.seq_no,
        section_path=[clean_text(p) for p in raw.section_path],
        kind=raw.kind,  # type: ignore[arg-type]
        heading=clean_text(raw.heading.lstrip("—-─ ")),
        task=nt.field(raw.task),
        leaders=leaders,
        units=units,
        progress=progress,
        status=overall_status(progress),
        deadlines=deadlines(nt, raw.task),
    )


def overall_status(progress: list[Progress]) -> Status | None:
    """One status for the item: the worst stated status of its progress entries."""
    order = VOCAB.status_severity
    stated = [p.status for p in progress if p.status]
    if not stated:
        return None
    return min(stated, key=order.index)
