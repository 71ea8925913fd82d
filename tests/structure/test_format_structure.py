"""The same reports in other encodings and containers give the same items, spans still exact."""

from __future__ import annotations

import html

import pytest
from helpers import SEEDS

from llmstruct.ingest.source import read_source
from llmstruct.structure.pipeline import structure_file
from llmstruct.text.normalize import normalize


def _check_spans(result) -> int:
    text = result.source.text
    count = 0
    for rec in result.records:
        for item in rec.items:
            for span in item.task.spans:
                assert text[span.start:span.end] == span.text
                count += 1
    return count


def test_gbk_encoded_bulletin(tmp_path):
    original = (SEEDS / "000_5c1aadecc78db95a.txt").read_text(encoding="utf-8")
    path = tmp_path / "bulletin_gbk.txt"
    path.write_bytes(original.encode("gb18030"))
    result = structure_file(path)
    assert result.source.encoding in ("gb18030", "gbk")
    assert [i.seq_no for i in result.records[0].items] == list(range(1, 70))
    assert _check_spans(result) == 69


def test_html_task_list_with_site_chrome(tmp_path):
    lines = (SEEDS / "001_0bd5adcbd4f51cd8.txt").read_text(encoding="utf-8").splitlines()
    body = "".join(f"<p>{html.escape(ln)}</p>\n" for ln in lines if ln.strip())
    page = (
        "<html><head><meta charset='utf-8'><title>沂源县</title><script>var x=1;</script></head><body>"
        "<nav class='breadcrumb'>首页 &gt; 政务公开 &gt; 重点领域</nav>"
        f"<div class='article'>{body}</div>"
        "<footer>版权所有 沂源县人民政府 网站标识码 ICP备案</footer></body></html>"
    )
    path = tmp_path / "tasks.html"
    path.write_text(page, encoding="utf-8")
    result = structure_file(path)
    assert "版权所有" not in result.source.text and "var x" not in result.source.text
    items = result.records[0].items
    assert [i.seq_no for i in items] == list(range(1, 76))
    assert [(u.name, u.role) for u in items[0].units] == [("县科技局", "lead"), ("县发展改革局", "cooperating")]
    _check_spans(result)


def test_docx_bulletin(tmp_path):
    import docx

    doc = docx.Document()
    for line in (SEEDS / "000_5c1aadecc78db95a.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            doc.add_paragraph(line)
    path = tmp_path / "bulletin.docx"
    doc.save(path)
    result = structure_file(path)
    items = result.records[0].items
    assert [i.seq_no for i in items] == list(range(1, 70))
    assert [p.name for p in items[61].leaders] == ["庄金才"]
    _check_spans(result)


def test_normalisation_keeps_offsets():
    text = "２０２１年增长 7%左\n\n— 3—\n右，現(xiàn)在**重点**?? 完成"
    nt, report = normalize(text)
    assert "2021年" in nt.text and "— 3—" not in nt.text and "(xiàn)" not in nt.text and "**" not in nt.text
    assert report.page_numbers_dropped == 1 and report.mojibake_dropped == 1
    for a in range(len(nt.text)):
        for b in range(a + 1, min(len(nt.text), a + 8) + 1):
            span = nt.span(a, b)
            assert text[span.start:span.end] == span.text


def test_seed_sources_round_trip():
    for path in sorted(SEEDS.glob("*.txt")):
        assert read_source(path).text == path.read_bytes().decode("utf-8")


def _numbered_list(n: int, start: int = 1) -> str:
    lines = ["某县2025年重点工作任务", ""]
    for k in range(start, start + n):
        lines += [f"{k}. 完成第{k}项工程建设任务。（责任单位：县发改局）", ""]
    return "\n".join(lines)


def test_item_numbers_past_999_stay_items(tmp_path):
    """Item 1000 and later are items of their own, not one giant progress entry of item 999."""
    f = tmp_path / "long.txt"
    f.write_text(_numbered_list(1200), encoding="utf-8")
    rec = structure_file(f).records[0]
    assert len(rec.items) == 1200
    assert rec.items[-1].item_id.endswith("#1200")
    assert max(len(it.task.text) for it in rec.items) < 40


def test_a_report_with_too_many_items_is_refused_with_the_limit(tmp_path):
    from llmstruct.errors import IngestError
    from llmstruct.structure.pipeline import MAX_ITEMS

    f = tmp_path / "huge.txt"
    f.write_text(_numbered_list(MAX_ITEMS + 1), encoding="utf-8")
    with pytest.raises(IngestError) as exc:
        structure_file(f)
    assert "too many task items" in str(exc.value) and f"{MAX_ITEMS:,}" in str(exc.value)
    assert str(f) in str(exc.value)


def test_a_list_held_twice_warns(tmp_path):
    f = tmp_path / "twice.txt"
    one = _numbered_list(5)
    f.write_text(one + "\n\n" + one.split("\n", 2)[2], encoding="utf-8")
    rec = structure_file(f).records[0]
    assert len(rec.items) == 5
    assert any("starts again at 1" in w for w in rec.warnings), rec.warnings
