"""The review page shows exactly the source text, with each field's span highlighted and escaped."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT
from typer.testing import CliRunner

from llmstruct.app.cli import app
from llmstruct.app.review import collect, render_review, review_dir
from llmstruct.structure.pipeline import structure_file, write_records

SEEDS = ROOT / "seeds"
CHROMIUM = Path("/usr/bin/chromium")
runner = CliRunner()

TASKS = """关于2023年重点工作任务<分解>的通知

1. 加快<script>alert(1)</script>园区建设，年内新增企业 20 家以上。(县发改局牵头，县财政局等部门配合)
2. 推进“放管服”改革 & 优化营商环境，6月底前完成。(县行政审批服务局负责)
"""


def _text_of(page: str) -> str:
    """The document text shown in the page: the #text pane with the tags removed."""
    pane = re.search(r'<div id="text">(.*?)</div><div id="rec">', page, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", "", pane))


@pytest.fixture(scope="module")
def bulletin():
    return structure_file(SEEDS / "000_5c1aadecc78db95a.txt")


def test_page_shows_the_exact_source_range_with_every_field(bulletin):
    rec = bulletin.records[0]
    original = bulletin.source.text
    page = render_review(rec, original)
    assert _text_of(page) == original[rec.source_range.start:rec.source_range.end]
    marks = collect(rec)[0]
    assert {m.type for m in marks} >= {"task", "progress", "leader", "unit-responsible", "unit-cooperating",
                                       "deadline", "title", "date"}
    for m in marks:
        assert f'id="f-{m.id}"' in page
        assert re.search(rf'class="seg[^"]*" data-m="(\d+ )*{m.id}( \d+)*"', page), m
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_text_from_the_document_is_escaped(tmp_path):
    src = tmp_path / "tasks.txt"
    src.write_text(TASKS, encoding="utf-8")
    st = structure_file(src)
    rec = st.records[0]
    page = render_review(rec, st.source.text)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert _text_of(page) == st.source.text[rec.source_range.start:rec.source_range.end]
    assert len(re.findall(r"<script>", page)) == 1  # the page's own click handler only


def test_review_dir_writes_pages_and_checks_the_source(tmp_path):
    out = tmp_path / "out"
    for name in ("000_5c1aadecc78db95a.txt", "004_9441ed748846e1ff.txt"):
        write_records(structure_file(SEEDS / name).records, out)
    (out / "run.json").write_text('{"not": "a record"}', encoding="utf-8")
    res = review_dir(out, [SEEDS])
    assert res.failures == () and res.records == 11 and len(res.written) == 11
    assert (out / "review" / "index.html").is_file()
    assert "004_9441ed748846e1ff-10.html" in (out / "review" / "index.html").read_text(encoding="utf-8")
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "000_5c1aadecc78db95a.txt").write_text((SEEDS / "000_5c1aadecc78db95a.txt").read_text(encoding="utf-8")
                                                      + "\n附件", encoding="utf-8")
    shutil.copy(SEEDS / "004_9441ed748846e1ff.txt", changed)
    res = review_dir(out, [changed])
    assert len(res.failures) == 1 and "sha256" in res.failures[0] and len(res.written) == 10


def test_cli_exit_codes(tmp_path):
    out = tmp_path / "out"
    write_records(structure_file(SEEDS / "001_0bd5adcbd4f51cd8.txt").records, out)
    ok = runner.invoke(app, ["review", str(out)])
    assert ok.exit_code == 0, ok.output
    assert (out / "review" / "001_0bd5adcbd4f51cd8.html").is_file()
    assert runner.invoke(app, ["review", str(out), "--sources", str(tmp_path)]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["review", str(empty)]).exit_code == 64


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed")
@pytest.mark.browser
def test_clicks_jump_between_text_and_record(tmp_path, bulletin):
    """A field row scrolls to and flashes its text; a highlight flashes its field row."""
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "r.html"
    page_file.write_text(render_review(bulletin.records[0], bulletin.source.text), encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(page_file.as_uri())
            leader = page.locator(".f.t-leader").first
            mid = leader.get_attribute("data-m")
            leader.click()
            seg = page.locator(f'.seg[data-m~="{mid}"]').first
            assert "flash" in (seg.get_attribute("class") or "")
            assert seg.inner_text().strip() == "朱凤华"
            unit = page.locator(".seg.t-unit-responsible").first
            uid = unit.get_attribute("data-m").split(" ")[0]
            unit.click()
            assert "flash" in (page.locator(f"#f-{uid}").get_attribute("class") or "")
        finally:
            browser.close()


def test_an_unreadable_source_fails_its_record_only(tmp_path):
    """One source that cannot be read (here: emptied) is one failure line; the others get pages."""
    good = tmp_path / "src" / "good.txt"
    bad = tmp_path / "src" / "bad.txt"
    good.parent.mkdir()
    text = (SEEDS / "001_0bd5adcbd4f51cd8.txt").read_text(encoding="utf-8")
    good.write_text(text, encoding="utf-8")
    bad.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    write_records(structure_file(good).records + structure_file(bad).records, out)
    bad.write_bytes(b"")
    result = review_dir(out, [good.parent])
    assert [p.name for p in result.written if p.name != "index.html"] == ["good.html"]
    assert len(result.failures) == 1 and "bad" in result.failures[0] and "empty file" in result.failures[0]
