"""Tables flattened one cell per line: ``序号`` / header cells / ``1`` / task / units …

Web pages of task-split tables (目标任务分解表, 民生实事推进情况) often lose their table markup
in extraction: each cell lands on a line of its own, and empty cells vanish. Here the
header names each column's job (task, leader, units with a role, progress, a 是/否 flag,
free text), and the cells of a row are given to the columns in order, a cell skipping a
column that cannot hold it (a name is not a task target, a unit list is not a leader), so a
dropped empty cell does not shift the rest of the row. Section headings inside the table
(``一、… （牵头领导：A、B）``) give the items their section and their leaders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmstruct.structure.layout import Line, lines
from llmstruct.structure.segmenting import (
    _HEADING_LEADERS,
    _L1,
    _L2,
    UNIT_KEY_ROLES,
    Range,
    RawItem,
    RawProgress,
    is_targets_section,
)
from llmstruct.text.normalize import NormText
from llmstruct.text.units import looks_like_unit

_ROW_NO = re.compile(r"^\d{1,4}$")
_PERSON = re.compile(r"^[\u4e00-\u9fff]{2,4}(?:[、，,][\u4e00-\u9fff]{2,4})*$")
_MAX_HEADER = 16
_TARGET_WORDS = re.compile(r"预期目标|主要目标|主要指标")
_TARGET_HEAD = re.compile(r"^(?:[一二三四五六七八九十]{1,3}、|（[一二三四五六七八九十]{1,3}）)?\s*主要(?:经济社会发展)?(?:预期)?(?:目标|指标)")


@dataclass(frozen=True)
class Column:
    name: str
    job: str  # task | text | leader | unit | person | progress | flag
    role: str = "responsible"  # for unit columns


def _cell(line: Line) -> Line:
    """The line without the ``|`` separators some pages keep (``城管局 |``)."""
    text = line.text
    lead = len(text) - len(text.lstrip("| "))
    trail = len(text) - len(text.rstrip("| "))
    return Line(line.start + lead, line.end - trail, text[lead:len(text) - trail], line.indented)


def _column(name: str, have_task: bool) -> Column:
    key = re.sub(r"\s", "", name)
    role = UNIT_KEY_ROLES.get(key, "")
    if role is None or key.endswith("领导"):
        return Column(key, "leader")
    if role or re.search(r"单位|部门|责任主体", key):
        role = role or ("lead" if "牵头" in key else "cooperating" if re.search("配合|协办", key) else "responsible")
        return Column(key, "unit", role)
    if re.search(r"责任人|联系人", key):
        return Column(key, "person")
    if re.search(r"进展|推进情况|完成情况|进度", key):
        return Column(key, "progress")
    if key.startswith("是否"):
        return Column(key, "flag")
    if not have_task and re.search(r"任务|目标|指标|事项|项目|内容", key):
        return Column(key, "task")
    return Column(key, "text")


def _header(cells: list[Line], i: int) -> tuple[list[Column], int] | None:
    """The columns of a table whose ``序号`` cell is ``cells[i]``, and the index of its first row."""
    cols: list[Column] = []
    j = i + 1
    while j < len(cells) and not _ROW_NO.match(cells[j].text) and not _heading(cells[j].text):
        text = cells[j].text
        if not text or len(text) > _MAX_HEADER or re.search(r"[，。；、：,;:]", text):
            return None
        cols.append(_column(text, any(c.job == "task" for c in cols)))
        j += 1
    first = j
    while j < len(cells) and _heading(cells[j].text):  # a section heading before the first row
        j += 1
    if j >= len(cells) or not _ROW_NO.match(cells[j].text) \
            or not any(c.job in ("unit", "leader") for c in cols) or not any(c.job == "task" for c in cols):
        return None
    return cols, first


def _heading(text: str) -> bool:
    """A section heading among the rows: ``一、…`` or ``（一）…`` not ending a sentence."""
    return bool(_L1.match(text) or _L2.match(text)) and not text.endswith(("。", "；"))


def is_cell_table(nt: NormText, start: int, end: int) -> bool:
    """Whether the report holds a table flattened one cell per line."""
    cells = [_cell(ln) for ln in lines(nt, start, end)]
    return any(c.text == "序号" and _header(cells, i) for i, c in enumerate(cells))


def _unitish(text: str) -> bool:
    names = [n for n in re.split(r"[、，,]", text) if n]
    return bool(names) and all(looks_like_unit(n) or (2 <= len(n) <= 12 and not re.search(r"[\d%。；]", n))
                               for n in names) and any(looks_like_unit(n) for n in names)


def _fits(col: Column, text: str, later: list[Column]) -> bool:
    if col.job == "task":  # the row's first cell is its task
        return True
    person = bool(_PERSON.match(text)) and not looks_like_unit(text)
    if col.job == "leader" or col.job == "person":
        return person
    if col.job == "unit":
        return _unitish(text)
    if col.job == "flag":
        return text in ("是", "否")
    # a text column leaves a name or a unit list to a column of that kind further on
    if person and any(c.job in ("leader", "person") for c in later):
        return False
    return not (_unitish(text) and any(c.job == "unit" for c in later))


def _row_item(seq: int, row: list[Line], cols: list[Column], path: list[str], kind: str,
              leaders: list[Range]) -> RawItem:
    item = RawItem(seq_no=seq, kind=kind, section_path=list(path), task=[], section_leaders=list(leaders))
    k = next(i for i, c in enumerate(cols) if c.job == "task")
    for cell in row:
        while k < len(cols) and not _fits(cols[k], cell.text, cols[k + 1:]):
            k += 1
        if k >= len(cols):
            break
        col = cols[k]
        k += 1
        r = (cell.start, cell.end)
        if col.job == "task":
            item.task = [r]
        elif col.job == "unit":
            pos = cell.start
            for m in list(re.finditer(r"[、，,]", cell.text)) + [None]:
                stop = cell.start + m.start() if m else cell.end
                if stop > pos:
                    item.unit_cells.append([(pos, stop)])
                    item.cell_roles.append(col.role)
                pos = stop + 1
        elif col.job == "leader":
            item.leader_cells.append(r)
        elif col.job == "progress":
            item.progress.append(RawProgress(None, [r]))
    return item


def segment_cells(nt: NormText, start: int, end: int) -> list[RawItem]:
    """One item per numbered row of each cell-per-line table in the report."""
    all_lines = lines(nt, start, end)
    cells = [_cell(ln) for ln in all_lines]
    items: list[RawItem] = []
    i = 0
    while i < len(cells):
        head = _header(cells, i) if cells[i].text == "序号" else None
        if head is None:
            i += 1
            continue
        cols, j = head
        title = cells[i - 1].text if i > 1 and not re.search(r"[。；]$", cells[i - 1].text) else ""
        task_col = next(c for c in cols if c.job == "task")
        table_target = bool(_TARGET_WORDS.search(title) or _TARGET_WORDS.search(task_col.name))
        heading, leaders = "", []
        expected: int | None = None
        row: list[Line] = []
        seq = 0

        def close() -> None:
            if seq and row:
                path = [heading] if heading else ([title] if title else [])
                target = table_target or bool(heading and (is_targets_section(heading) or _TARGET_HEAD.match(heading)))
                items.append(_row_item(seq, row, cols, path, "target" if target else "task", leaders))

        while j < len(cells):
            text = cells[j].text
            nxt = cells[j + 1].text if j + 1 < len(cells) else ""
            if text == "序号" or nxt == "序号" or re.fullmatch(r"附件\s*\d*", text):
                break
            if _ROW_NO.match(text) and (expected is None or int(text) == expected):
                close()
                seq, row, expected = int(text), [], int(text) + 1
            elif _heading(text):
                close()
                seq, row = 0, []
                lm = _HEADING_LEADERS.search(text)
                heading = text
                leaders = [(cells[j].start + lm.start(1), cells[j].start + lm.end(1))] if lm else []
            elif text and seq:
                row.append(cells[j])
            j += 1
        close()
        i = j
    return items


__all__ = ["is_cell_table", "segment_cells"]
