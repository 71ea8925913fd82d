"""Find sections and task items in one report, for each layout seen in real documents.

Layouts:
- ``numbered``: ``N. task…（责任领导：…）`` followed by a ``进展情况：`` paragraph, or one-line
  numbered tasks ending in a unit tail ``（X牵头，Y等部门配合）``, or tasks followed by their
  units on lines of their own (``牵头单位：X`` / ``责任单位：Y、Z``). Task-split notices that
  number their targets ``（一）…`` and give each a ``责任单位：`` line (or clause) are numbered
  the same way, by ``（一）``, ``（二）``… within each ``一、`` section;
- ``table``: a PDF table 序号 / 年度任务目标 / 责任单位 / 进展情况 whose cells wrap every few
  characters and whose progress column is split into per-unit blocks (``底阁镇：``);
- ``cells``: a table flattened one cell per line (``序号`` / header cells / ``1`` / task /
  units …), in :mod:`llmstruct.structure.cells`;
- ``work_report``: an unnumbered 政府工作报告, whose items are topic paragraphs.

Segmenters return :class:`RawItem` with clean-text ranges; :mod:`llmstruct.rules` turns
them into schema records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmstruct.structure.layout import Line, cn_number, lines
from llmstruct.text.normalize import CJK, CJK_PUNCT, NormText
from llmstruct.text.units import looks_like_unit
from llmstruct.vocab import VOCAB

Range = tuple[int, int]

# Label keys of a unit clause or a unit line -> role (None: the key names leaders).
UNIT_KEY_ROLES: dict[str, str | None] = VOCAB.clause_key_roles
_KEYS_RX = "|".join(map(re.escape, sorted(UNIT_KEY_ROLES, key=len, reverse=True)))
_LEADER_KEYS_RX = "|".join(map(re.escape, sorted((k for k, r in UNIT_KEY_ROLES.items() if r is None),
                                                   key=len, reverse=True)))
# A line that only assigns: ``牵头单位：区发改局`` / ``责任单位：A、B`` / ``牵头领导：X``.
_UNIT_LINE = re.compile(rf"^(?:{_KEYS_RX})\s*[：:]\s*\S")
_LEADER_LINE = re.compile(rf"^(?:{_LEADER_KEYS_RX})\s*[：:]\s*\S")
# A keyed clause left open at the end of a task (the page or the cell is cut off after it).
_OPEN_CLAUSE = re.compile(rf"[（(]\s*((?:{_KEYS_RX})\s*[：:][^（）()]*)$")
# A keyed assignment clause anywhere in a line: ``…。(牵头单位：市发改委；…``.
_KEYED_CLAUSE = re.compile(rf"[（(]\s*(?:{_KEYS_RX})\s*[：:]")
# ``（牵头领导：成坤、柯相国）`` closing a section heading: leaders of every item under it.
_HEADING_LEADERS = re.compile(rf"[（(]\s*((?:{_LEADER_KEYS_RX})\s*[：:][^（）()]*)[）)]\s*$")


@dataclass
class RawProgress:
    unit: Range | None
    ranges: list[Range]


@dataclass
class RawItem:
    seq_no: int | None
    kind: str
    section_path: list[str]
    task: list[Range]
    heading: str = ""
    unit_clause: Range | None = None
    unit_cells: list[list[Range]] = field(default_factory=list)
    progress: list[RawProgress] = field(default_factory=list)
    unit_lines: list[Range] = field(default_factory=list)  # ``牵头单位：X`` lines, each parsed as a clause
    section_leaders: list[Range] = field(default_factory=list)  # ``牵头领导：…`` of the sections above
    cell_roles: list[str] = field(default_factory=list)  # role of each of ``unit_cells`` (default responsible)
    leader_cells: list[Range] = field(default_factory=list)  # a 分管领导 column's cell


_ITEM = re.compile(r"^(\d{1,4})\s*[.．、](?!\d)\s*")
_L1 = re.compile(r"^([一二三四五六七八九十]{1,3})、\s*(.+)$")
_L2 = re.compile(r"^（([一二三四五六七八九十]{1,3})）\s*(.+)$")
_TARGETS = re.compile(r"^主要(?:经济社会发展)?(?:预期)?(?:目标|指标)(?:（共\s*\d+\s*项）)?$")
# A section of main targets under a number or with a lead-in: 一、经济社会发展的主要预期目标,
# 一、2023年全区经济社会发展主要预期目标.
_TARGETS_SECTION = re.compile(r"^(?:[一二三四五六七八九十]{1,3}、\s*)?[^，。；：、]{0,24}?(?:主要(?:经济社会发展)?预期(?:目标|指标)"
                              r"|经济社会发展(?:的)?主要(?:目标|指标))$")
_PROGRESS = re.compile(r"^进展情况\s*[：:]\s*")
_UNIT_CLAUSE = re.compile(r"[（(]([^（）()]*?(?:责任领导|责任单位|牵头|负责|配合)[^（）()]*)[）)]\s*[。.]?\s*$")
_TABLE_HEADER = re.compile(r"^序号\s+.*任务.*责任单位")
_TABLE_SECTION = re.compile(r"^(.+?)（共\s*(\d+)\s*项）$")


def detect_layout(nt: NormText, start: int, end: int) -> str:
    """Choose the segmenter from what the report's lines look like."""
    text = nt.text[start:end]
    if re.search(r"(?m)^\s*序号\s+.*责任单位", text) and len(re.findall(r"(?m)^\s*\d{1,3}\s*$", text)) >= 3:
        return "table"
    from llmstruct.structure.cells import is_cell_table  # cells builds on this module

    if "序号" in text and is_cell_table(nt, start, end):
        return "cells"
    found = list(re.finditer(r"(?m)^\s*\d{1,4}\s*[.．、](?!\d).*$", text))
    # Numbered lines that start only in the second half of a report are a list or an
    # appendix inside it (a work report's 民生实事 1-10, its 名词解释), not its layout: on the
    # seeds' task lists and bulletins the first numbered line comes within the first 5%, and a
    # speech (各位代表) is what such a list sits in; a short bulletin's header may be long.
    if found and found[0].start() > len(text) / 2 and "各位代表" in text[:found[0].start()]:
        found = []
    numbered = [m.group(0) for m in found]
    if len(numbered) >= 3:
        return "numbered"
    # A short bulletin (one or two tasks) still marks its tasks: an assignment clause on a
    # numbered line, or 进展情况 paragraphs.
    if numbered and (any(_UNIT_CLAUSE.search(ln) for ln in numbered) or re.search(r"(?m)^\s*进展情况\s*[：:]", text)):
        return "numbered"
    if numbered and _assigned_lines(lines(nt, start, end), _ITEM) >= 1:
        return "numbered"
    if _assigned_lines(lines(nt, start, end), _L2) > len(numbered):
        return "numbered"
    return "work_report"


def _assigned_lines(all_lines: list[Line], marker: re.Pattern[str]) -> int:
    """Lines opened by ``marker`` that are assigned to units: a keyed clause in the line
    (``（一）…。(牵头单位：…``) or a unit line (``责任单位：…``) right after it."""
    n = 0
    for i, ln in enumerate(all_lines):
        if not marker.match(ln.text):
            continue
        nxt = all_lines[i + 1].text if i + 1 < len(all_lines) else ""
        n += bool(_KEYED_CLAUSE.search(ln.text) or _is_unit_line(nxt))
    return n


def _is_unit_line(text: str) -> bool:
    """``责任单位：A、B`` on a line of its own; not the rest of a clause the task line opened
    (``…（责任领导：X；`` / ``责任单位：A；配合单位：B）``), which closes a bracket it did not open."""
    if not _UNIT_LINE.match(text):
        return False
    return text.count("）") + text.count(")") <= text.count("（") + text.count("(")


def is_targets_section(heading: str) -> bool:
    """A 主要预期目标 heading: the items under it are targets."""
    return bool(_TARGETS.match(heading) or _TARGETS_SECTION.match(heading))


def numbering_restarts(nt: NormText, start: int, end: int) -> int:
    """How often the item numbering starts again at 1 after the first run: a file that holds
    the same list more than once (only the first run becomes items)."""
    ones = sum(1 for line in lines(nt, start, end) if (m := _ITEM.match(line.text)) and m.group(1) == "1")
    return max(0, ones - 1)


def segment(nt: NormText, start: int, end: int, layout: str) -> list[RawItem]:
    from llmstruct.structure.cells import segment_cells  # cells builds on this module

    return {"numbered": segment_numbered, "table": segment_table, "work_report": segment_work_report,
            "cells": segment_cells}[layout](nt, start, end)


class _Sections:
    """Heading state: level-1 (一、) and level-2 (（一）) headings must come in order."""

    def __init__(self) -> None:
        self.path: list[str] = []
        self.l1 = 0
        self.l2 = 0
        # 牵头领导 clauses of the level-1 and level-2 sections now open
        self.leaders: list[list[Range]] = [[], []]

    def try_heading(self, line: Line, max_len: int = 60) -> bool:
        text = line.text
        lm = _HEADING_LEADERS.search(text)
        bare = text[: lm.start()] if lm else text
        if len(bare) > max_len or bare.endswith(("。", "；", "，")):
            return False
        clause = [(line.start + lm.start(1), line.start + lm.end(1))] if lm else []
        if _TARGETS.match(bare):
            self.path = [text]
            self.leaders = [clause, []]
            return True
        m = _L1.match(bare)
        if m and cn_number(m.group(1)) == self.l1 + 1:
            self.l1 += 1
            self.l2 = 0
            self.path = [text]
            self.leaders = [clause, []]
            return True
        m = _L2.match(bare)
        if m and cn_number(m.group(1)) == self.l2 + 1 and (self.l1 or self.l2 or self.path):
            self.l2 += 1
            self.path = self.path[:1] + [text]
            self.leaders[1] = clause
            return True
        return False

    def add_leaders(self, clause: Range) -> None:
        """A ``牵头领导：…`` line right under a heading: the innermost open section's."""
        self.leaders[1 if self.l2 and len(self.path) > 1 else 0].append(clause)

    def section_leaders(self) -> list[Range]:
        return list(self.leaders[1] or self.leaders[0])


def segment_numbered(nt: NormText, start: int, end: int) -> list[RawItem]:
    """Numbered tasks, with optional unit clause, unit lines and 进展情况 paragraph.

    Items are numbered ``N.``; in a task split that numbers its targets ``（一）…`` and
    assigns each to units (and has fewer ``N.`` lines than such targets), they are numbered
    ``（一）``, again from one in each ``一、`` section. ``牵头单位：X`` lines after a task
    are its units; a ``牵头领导：…`` line right under a heading, or such a clause closing
    the heading, names the leaders of the items under that heading.
    """
    all_lines = lines(nt, start, end)
    by_paren = _assigned_lines(all_lines, _L2) > sum(1 for ln in all_lines if _ITEM.match(ln.text))
    marker = _L2 if by_paren else _ITEM
    items: list[RawItem] = []
    sections = _Sections()
    expected = 1
    task_lines: list[Line] = []
    unit_lines: list[Line] = []
    progress_lines: list[Line] = []
    current: RawItem | None = None

    def close() -> None:
        if current is None:
            return
        _finish_numbered(nt, current, task_lines, progress_lines, unit_lines)
        items.append(current)

    for line in all_lines:
        m = marker.match(line.text)
        if m and (cn_number(m.group(1)) if by_paren else int(m.group(1))) == expected:
            close()
            task_lines, progress_lines, unit_lines = [], [], []
            kind = "target" if sections.path and is_targets_section(sections.path[0]) else "task"
            current = RawItem(seq_no=expected, kind=kind, section_path=list(sections.path), task=[],
                              section_leaders=sections.section_leaders())
            body = m.end(1) + 1 if by_paren else m.end()
            body += len(line.text[body:]) - len(line.text[body:].lstrip())
            task_lines.append(Line(line.start + body, line.end, line.text[body:], False))
            expected += 1
            continue
        l1_before = sections.l1
        if sections.try_heading(line):
            close()
            current = None
            task_lines, progress_lines, unit_lines = [], [], []
            if by_paren and sections.l1 != l1_before:
                expected = 1
            continue
        if current is None:
            if _LEADER_LINE.match(line.text) and (sections.path or sections.l1):
                sections.add_leaders((line.start, line.end))
            continue
        if not progress_lines and _is_unit_line(line.text):
            unit_lines.append(line)
            continue
        if unit_lines and not progress_lines and unit_lines[-1].text.endswith(("、", "，", ",")) \
                and len(line.text) <= 40 and not _PROGRESS.match(line.text):
            # a unit list wrapped onto the next line
            last = unit_lines[-1]
            unit_lines[-1] = Line(last.start, line.end, nt.text[last.start:line.end], last.indented)
            continue
        p = _PROGRESS.match(line.text)
        if p and not progress_lines:
            progress_lines.append(Line(line.start + p.end(), line.end, line.text[p.end():], False))
        elif progress_lines:
            progress_lines.append(line)
        else:
            task_lines.append(line)
    close()
    return items


def _finish_numbered(nt: NormText, item: RawItem, task_lines: list[Line], progress_lines: list[Line],
                     unit_lines: list[Line] | None = None) -> None:
    unit_lines = unit_lines or []
    # the task text runs over its lines, in pieces where unit lines come between
    runs: list[Range] = []
    for ln in task_lines:
        if runs and not any(runs[-1][1] <= u.start < ln.start for u in unit_lines):
            runs[-1] = (runs[-1][0], ln.end)
        else:
            runs.append((ln.start, ln.end))
    t_start, t_end = runs[0]
    text = nt.text[t_start:t_end]
    m = _UNIT_CLAUSE.search(text) or _OPEN_CLAUSE.search(text)
    if m:
        item.unit_clause = (t_start + m.start(1), t_start + m.end(1))
        t_end = t_start + m.start()
    item.task = [r for r in [nt.strip(t_start, t_end)] + [nt.strip(*r) for r in runs[1:]] if r[1] > r[0]] \
        or [nt.strip(t_start, t_end)]
    item.unit_lines = [(ln.start, ln.end) for ln in unit_lines]
    if len(progress_lines) > 1 or (progress_lines and progress_lines[0].end > progress_lines[0].start):
        p_start = progress_lines[0].start
        item.progress = [RawProgress(None, [nt.strip(p_start, progress_lines[-1].end)])]


# ---------------------------------------------------------------- table layout (PDF)

_TASK_END = ("。", "；", "！")
_UNIT_WRAP_WIDTH = 7
_TASK_COLUMN_WIDTH = 14
_PUNCT = re.compile(r"[，。；：、“”！？]")
_BLOCK_HEADER = re.compile(r"^([^\s：:，。；、“”]{2,20})[：:]$")


def _unitish(text: str) -> bool:
    """A unit cell line: an organisation name, or the first part of one that wraps."""
    if re.search(r"[，。；：、“”！？%\d]", text) or len(text) > 12:
        return False
    if len(text) == _UNIT_WRAP_WIDTH:
        return True
    return looks_like_unit(text) or len(text) >= _UNIT_WRAP_WIDTH - 1 and text[0] in "区县市镇各"


def segment_table(nt: NormText, start: int, end: int) -> list[RawItem]:
    """Rows of a four-column table flattened from a PDF, one item per 序号."""
    items: list[RawItem] = []
    section: list[str] = []
    expected = 1
    rows: list[tuple[int, list[Line], list[str], Line | None]] = []
    for line in lines(nt, start, end):
        text = line.text
        sec = _TABLE_SECTION.match(text)
        if sec:
            section = [sec.group(1).strip()]
            continue
        if _TABLE_HEADER.match(text):
            continue
        if text == str(expected):
            rows.append((expected, [], list(section), None))
            expected += 1
            continue
        cells = text.split()
        if len(cells) >= 3 and cells[0] == str(expected):
            rows.append((expected, [], list(section), line))
            expected += 1
            continue
        if rows:
            rows[-1][1].append(line)
    for seq, body, path, combined in rows:
        items.append(_table_row(nt, seq, body, path, combined))
    return items


def _split_combined(line: Line) -> list[Line]:
    """A row printed on one line (``63 task unit unit：``): its cells as separate lines."""
    out = []
    for m in re.finditer(r"\S+", line.text):
        out.append(Line(line.start + m.start(), line.start + m.end(), m.group(0), False))
    return out[1:]


def _table_row(nt: NormText, seq: int, body: list[Line], path: list[str], combined: Line | None) -> RawItem:
    kind = "target" if path and _TARGETS.match(path[0]) else "task"
    item = RawItem(seq_no=seq, kind=kind, section_path=path, task=[])
    task: list[Line] = []
    units: list[list[Line]] = []
    progress: list[Line] = []
    pending_header: Line | None = None
    if combined is not None:
        cells = _split_combined(combined)
        if cells:
            task.append(cells[0])
        if len(cells) > 1:
            units.append([cells[1]])
        if len(cells) > 2:
            pending_header = cells[2]
    state = "task"
    task_done = bool(task) and task[-1].text.endswith(_TASK_END)
    for i, whole in enumerate(body):
        line, *others = _cells(whole)
        text = line.text
        if state == "task":
            if not task or not (task_done or _unitish(text)):
                task.append(line)
                task_done = text.endswith(_TASK_END)
                progress.extend(others)
                continue
            state = "units"
        if state == "units":
            if units and _wraps(units[-1], text):
                units[-1].append(line)
                progress.extend(others)
                continue
            if _unitish(text) and not _BLOCK_HEADER.match(text):
                units.append([line])
                progress.extend(others)
                continue
            state = "progress"
        # A task cell cut off at a page break resumes later inside the progress column: an
        # indented short line while the task text is unfinished, and the lines after it.
        resumes = line.indented or state == "task_resumed" or _narrow_run(body[i:i + 3])
        if not task_done and resumes and len(text) <= _TASK_COLUMN_WIDTH and not _BLOCK_HEADER.match(text):
            task.append(line)
            task_done = text.endswith(_TASK_END)
            state = "progress" if task_done else "task_resumed"
            for cell in others:
                (units.append([cell]) if _unitish(cell.text) else progress.append(cell))
            continue
        state = "progress"
        progress.append(line)
        progress.extend(others)
    item.task = _column_ranges(nt, task)
    item.unit_cells = [[(ln.start, ln.end) for ln in cell] for cell in units]
    item.progress = _progress_blocks(nt, progress, pending_header)
    return item


def _narrow_run(run: list[Line]) -> bool:
    """Three lines in a row as narrow as the task column: the task text resumed after a page."""
    if len(run) < 3 or run[0].text.endswith(_TASK_END):
        return False
    return all(len(ln.text.replace(" ", "")) <= _TASK_COLUMN_WIDTH for ln in run)


def _wraps(cell: list[Line], nxt: str) -> bool:
    """Whether ``nxt`` continues a unit cell: the cell's last line fills the column and
    either the name is unfinished or ``nxt`` does not start a new unit (区/县/市/各…)."""
    joined = "".join(ln.text for ln in cell)
    if len(cell[-1].text) < _UNIT_WRAP_WIDTH or len(nxt) > _UNIT_WRAP_WIDTH or _PUNCT.search(nxt):
        return False
    return not looks_like_unit(joined) or nxt[0] not in "区县市各"


_CELL_GAP = re.compile(rf"(?<=[{CJK}{CJK_PUNCT}]) +(?=[{CJK}{CJK_PUNCT}])|(?<=[。；！]) +(?=\S)")


def _cells(line: Line) -> list[Line]:
    """Cells of a line where the PDF put several columns side by side (``。 风管委 信息…``)."""
    out = []
    pos = 0
    for m in _CELL_GAP.finditer(line.text):
        out.append(Line(line.start + pos, line.start + m.start(), line.text[pos:m.start()], line.indented and not out))
        pos = m.end()
    out.append(Line(line.start + pos, line.end, line.text[pos:], line.indented and not out))
    return out


def _column_ranges(nt: NormText, column: list[Line]) -> list[Range]:
    """Contiguous runs of a column's lines become one range each (several after an interleave)."""
    ranges: list[Range] = []
    for ln in column:
        if ranges and not nt.text[ranges[-1][1]:ln.start].strip():
            ranges[-1] = (ranges[-1][0], ln.end)
        else:
            ranges.append((ln.start, ln.end))
    return ranges


def _progress_blocks(nt: NormText, progress: list[Line], header: Line | None) -> list[RawProgress]:
    """Split the progress column into per-unit blocks at ``单位：`` lines."""
    blocks: list[RawProgress] = []
    current = RawProgress((header.start, header.end - 1) if header else None, [])
    body: list[Line] = []

    def flush() -> None:
        if body:
            current.ranges = _column_ranges(nt, body)
            blocks.append(current)

    for ln in progress:
        m = _BLOCK_HEADER.match(ln.text)
        if m and looks_like_unit(m.group(1)):
            flush()
            current = RawProgress((ln.start, ln.start + len(m.group(1))), [])
            body = []
            continue
        body.append(ln)
    flush()
    return blocks


# ---------------------------------------------------------------- work reports

_PART = re.compile(r"^(\d{4}年(?:工作回顾|工作安排|主要工作|工作打算|工作任务|主要目标任务)|加强政府自身建设|政府自身建设)")
_FIGURE = re.compile(r"\d+(?:\.\d+)?\s*(?:亿元|万元|亿美元|万美元|%|个百分点|万人|万吨|公里|平方米|亩)")
_HEADING_TERMINATORS = re.compile(r"(回顾|安排|打算|意见|建议|任务|目标|要求)")
_TOPIC_MAX = 16


def segment_work_report(nt: NormText, start: int, end: int) -> list[RawItem]:
    """Topic paragraphs of a work report (``全力招商引资。…``), plus targets and summaries.

    A paragraph is a topic when its first sentence is a short title (at most 16
    characters) or when it opens with a numbered sub-heading (``（一）…。``) followed by its
    text; the main-targets paragraph (主要预期目标) and review paragraphs that state a figure
    are kept too, since staff ask about them (a figure outside every item is lost to them).
    """
    items: list[RawItem] = []
    part, l1, l2 = "", "", ""
    l1_no = 0
    for line in lines(nt, start, end):
        text, body_start = line.text, line.start
        m1, m2, pm = _L1.match(text), _L2.match(text), _PART.match(text)
        if pm:
            part, l1, l2, l1_no = pm.group(1), "", "", 0
            rest = text[pm.end():]
            if len(rest) < 20:
                continue
            body_start, text = line.end - len(rest), rest
            m1 = m2 = None
        heading, marked = "", False
        if m1 and cn_number(m1.group(1)) in (l1_no + 1, 1):
            l1_no, l2 = cn_number(m1.group(1)) or 0, ""
            l1, rest = _heading_and_rest(text)
            if not rest:
                continue
            body_start, text = line.end - len(rest), rest
        elif m2:
            if "。" not in text and len(text) <= 60:
                l2 = text
                continue
            l2 = ""
            first = m2.group(2).split("。", 1)[0]
            heading, marked = (first if len(first) <= 40 else ""), True
            body_start, text = line.end - len(m2.group(2)), m2.group(2)
        path = [p for p in (part, l1, l2) if p]
        item = _paragraph_item(body_start, line.end, text, path, heading, marked)
        if item:
            items.append(item)
    return items


def _heading_and_rest(text: str) -> tuple[str, str]:
    """Split ``一、2019年工作回顾刚刚过去的…`` into heading and the paragraph glued to it."""
    if "。" not in text and len(text) <= 60:
        return text, ""
    m = _HEADING_TERMINATORS.search(text, 0, 40)
    if m:
        return text[: m.end()], text[m.end():]
    return text, ""


def _paragraph_item(start: int, end: int, text: str, path: list[str], heading: str,
                    marked: bool = False) -> RawItem | None:
    """Classify one paragraph; ``marked`` paragraphs opened with （一）… are always topics."""
    lead = len(text) - len(text.lstrip("—-─ "))
    body = text[lead:]
    stop = re.search("[。\ufffd]", body)
    first, dot = (body[: stop.start()], stop.group(0)) if stop else (body, "")
    if "主要预期目标" in text or "主要经济社会发展预期目标" in text:
        return RawItem(None, "target", path, [(start, end)], heading=heading)
    if heading or marked:
        return RawItem(None, "topic", path, [(start, end)], heading=heading)
    if dot and 2 <= len(first) <= _TOPIC_MAX and not re.search(r"\d{3,}", first):
        return RawItem(None, "topic", path, [(start, end)], heading=first)
    if len(_FIGURE.findall(text)) >= 1 and len(text) >= 60:
        return RawItem(None, "summary", path, [(start, end)])
    return None
