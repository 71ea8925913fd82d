"""Work-report headers as provinces print them: the speaker's line sits among web clutter,
names carry a space, the meeting line wraps."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SEEDS

from llmstruct.structure import structure_file

BODY = "各位代表：\n现在，我代表省人民政府向大会报告工作，请予审议。\n一、2025年工作回顾\n全省地区生产总值增长5.2%。\n"


@pytest.mark.parametrize("header, name, title, meeting", [
    ("2026年上海市政府工作报告\n——2026年2月3日在上海市第十六届人民代表大会第四次会议上\n来源：解放日报\n"
     "时间：2026-02-09\n上海市市长 龚 正\n", "龚正", "上海市市长", "上海市第十六届人民代表大会第四次会议"),
    ("政府工作报告\n——2026年1月26日在广东省第十四届\n人民代表大会第五次会议上\n广东省省长 孟凡利\n",
     "孟凡利", "广东省省长", "广东省第十四届人民代表大会第五次会议"),
    ("2026年云南省政府工作报告\n2026年1月28日在云南省第十四届人民代表大会第四次会议上\n省长　王予波\n",
     "王予波", "省长", "云南省第十四届人民代表大会第四次会议"),
    ("政府工作报告\n2026年1月10日在某县第十八届人民代表大会第五次会议上\n张三丰\n", "张三丰", "", None),
])
def test_speaker_and_meeting_from_the_header(tmp_path: Path, header: str, name: str, title: str,
                                             meeting: str | None) -> None:
    path = tmp_path / "report.txt"
    path.write_text(header + BODY, encoding="utf-8")
    rec = structure_file(path).records[0]
    text = path.read_text(encoding="utf-8")
    assert rec.speaker is not None and rec.speaker.name == name
    assert text[rec.speaker.span.start:rec.speaker.span.end] == rec.speaker.span.text
    assert rec.speaker_title == title
    if meeting:
        assert rec.meeting is not None and rec.meeting.name == meeting


def test_a_source_line_is_not_taken_for_a_speaker(tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    path.write_text("2026年某市政府工作报告\n2026年1月5日在某市第九届人民代表大会第六次会议上\n来源：某市日报\n"
                    "解放日报\n时间：2026-01-06\n" + BODY, encoding="utf-8")
    assert structure_file(path).records[0].speaker is None


def test_a_numbered_list_late_in_a_work_report_does_not_make_it_a_task_list(tmp_path: Path) -> None:
    """Three provinces end their reports with numbered 民生实事 or a 名词解释 glossary; the
    report is still a work report, its body kept as topic paragraphs."""
    body = "".join(f"{n}、第{n}部分\n全省地区生产总值增长{k}%，固定资产投资增长{k + 1}%，城乡居民收入稳步提高。"
                   "我们坚持稳中求进，扎实推进各项工作，取得了新的成效。\n" for k, n in enumerate("一二三四五六", 1))
    glossary = "名词解释\n" + "".join(f"{k}.术语{k}：指某项工作的简称。\n" for k in range(1, 6))
    path = tmp_path / "report.txt"
    path.write_text("2026年某省政府工作报告\n2026年1月20日在某省第十四届人民代表大会第四次会议上\n省长 李四\n"
                    + BODY + body + glossary, encoding="utf-8")
    rec = structure_file(path).records[0]
    assert rec.doc_type == "work_report"
    assert not any(it.seq_no for it in rec.items)  # the glossary's 1. 2. 3. are not tasks
    assert any("地区生产总值" in it.task.text for it in rec.items)


def test_a_short_bulletin_with_a_long_header_keeps_its_numbered_tasks(tmp_path: Path) -> None:
    """Seed 000 cut after its third task: the header is over half the text, yet it is no speech."""
    src = (SEEDS / "000_5c1aadecc78db95a.txt").read_text(encoding="utf-8")
    path = tmp_path / "bulletin.txt"
    path.write_text(src[:src.index("4. 编制产业链图谱")], encoding="utf-8")
    rec = structure_file(path).records[0]
    assert rec.doc_type != "work_report" and [it.seq_no for it in rec.items] == [1, 2, 3]
