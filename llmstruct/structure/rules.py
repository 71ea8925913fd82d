"""Rules that fill what the text states explicitly: units and roles, leaders, deadlines.

Rules run before any model and are trusted only for what is written in a fixed form
(``（责任领导：…；责任单位：…）``, ``（X牵头，Y等部门配合）``, ``牵头单位：X`` / ``责任单位：Y、Z``
lines under a task, a ``牵头领导：…`` line or clause on a section heading, table unit cells,
``单位：`` block headers) and for status words that leave no doubt (暂低于, 暂缓, 已全部完成).
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
from llmstruct.structure.layout import in_progress_report
from llmstruct.structure.segmenting import UNIT_KEY_ROLES, Range, RawItem
from llmstruct.text.normalize import NormText, clean_text
from llmstruct.text.units import canonical_unit
from llmstruct.vocab import VOCAB

# Label keys of a unit clause or unit line -> role (None: the key names leaders): the
# vocabulary's keys (segmenting.UNIT_KEY_ROLES).
_KEY_ROLES: dict[str, UnitRole | None] = UNIT_KEY_ROLES  # type: ignore[assignment]
_KEYED = re.compile(r"(?:%s)\s*[：:]" % "|".join(map(re.escape, sorted(_KEY_ROLES, key=len, reverse=True))))
# A name that names no body: 各相关单位, 相关街道, 有关部门 (the gold lists only named units).
_VAGUE = re.compile(r"^(?:各|其他|其它)?(?:相关|有关)[\u4e00-\u9fff]{0,4}(?:单位|部门|街道|镇街|乡镇|镇|科室)$|^等?(?:单位|部门)$")
# An inclusion note after a name: 各区人民政府〈含开发区、风景区〉 (closed or cut off).
_NOTE = re.compile(r"[〈（(<](?:含|包括)[^〉）)>]*(?:[〉）)>]|$)")
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


def _names(nt: NormText, start: int, end: int) -> Iterator[Range]:
    """Ranges of the names in a list ``A、B，C〈含D、E〉``: an inclusion note is cut off the
    name before it (its separators do not split), and names of one character or naming no
    body (各相关单位) are left out."""
    notes = [(m.start(), m.end()) for m in _NOTE.finditer(nt.text, start, end)]
    pos = start
    cuts = [m.start() for m in re.finditer(r"[、，,]", nt.text[start:end])]
    for cut in [start + c for c in cuts] + [end]:
        if any(a <= cut < b for a, b in notes):
            continue
        r = nt.strip(pos, cut)
        pos = cut + 1
        note = next((a for a, b in notes if r[0] <= a < r[1]), None)
        if note is not None:
            r = nt.strip(r[0], note)
        name = _name(nt, r)
        if len(name) < 2 or _VAGUE.match(name):
            continue
        yield r


def parse_unit_clause(nt: NormText, clause: Range) -> tuple[list[Named], list[Unit]]:
    """Leaders and units from ``责任领导：A、B；责任单位：C`` or ``C牵头，D、E等部门配合``."""
    leaders: list[Named] = []
    units: list[Unit] = []
    a, b = clause
    body = nt.text[a:b]
    if _KEYED.search(body):
        for part in _pieces(nt, a, b, "；;"):
            key_m = re.match(r"\s*([^：:]{2,8}?)\s*[：:]", nt.text[part[0]:part[1]])
            key = re.sub(r"\s", "", key_m.group(1)) if key_m else ""
            if key not in _KEY_ROLES:
                continue
            role = _KEY_ROLES[key]
            for r in _names(nt, part[0] + key_m.end(), part[1]):
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
    for line in raw.unit_lines:  # 牵头单位：X / 责任单位：Y、Z lines under the task
        more_leaders, more_units = parse_unit_clause(nt, line)
        leaders += more_leaders
        units += more_units
    if not leaders:  # a section's 牵头领导 applies to the items under it that name none
        for clause in raw.section_leaders:
            leaders += parse_unit_clause(nt, clause)[0]
    for r in raw.leader_cells:
        leaders += [Named(name=_name(nt, n), span=nt.span(*n)) for n in _names(nt, *r)]
    for k, cell in enumerate(raw.unit_cells):
        if k < len(raw.cell_roles):  # a column of names (cell tables): only named bodies
            if len(cell) == 1 and not list(_names(nt, *cell[0])):
                continue
            units.append(_unit(nt, cell, raw.cell_roles[k]))  # type: ignore[arg-type]
        else:
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
        deadlines=_deadlines_of(nt, raw),
    )


def _deadlines_of(nt: NormText, raw: RawItem) -> list[Deadline]:
    """The task's deadlines; in a progress report's paragraphs 上半年 is the period reported on."""
    found = deadlines(nt, raw.task)
    if found and raw.kind not in ("task", "target") and raw.task and in_progress_report(nt, raw.task[0][0]):
        found = [d for d in found if d.text != "上半年"]
    return found


def overall_status(progress: list[Progress]) -> Status | None:
    """One status for the item: the worst stated status of its progress entries."""
    order = VOCAB.status_severity
    stated = [p.status for p in progress if p.status]
    if not stated:
        return None
    return min(stated, key=order.index)
