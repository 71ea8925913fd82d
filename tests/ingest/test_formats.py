"""File-format layer: every fixture is generated here, so the tests say exactly which bytes are read."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import SEEDS

from llmstruct.errors import IngestError
from llmstruct.ingest.common import MB
from llmstruct.ingest.source import SUPPORTED_SUFFIXES, SourceText, read_source

SENTENCE = "县发展和改革局：地区生产总值增长7%左右。"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect_error(path: Path, *keywords: str, **kwargs: object) -> IngestError:
    with pytest.raises(IngestError) as info:
        read_source(path, **kwargs)  # type: ignore[arg-type]
    err = info.value
    message = str(err)
    assert str(path) in message
    assert err.path == str(path)
    assert "\n" not in err.reason
    for word in keywords:
        assert word.lower() in message.lower(), (word, message)
    return err


# --------------------------------------------------------------------------- text


def test_utf8(tmp_path: Path) -> None:
    data = f"{SENTENCE}\nPinyin: Zhèngfǔ gōngzuò bàogào\u00a0??\n".encode()
    path = write(tmp_path, "a.txt", data)
    src = read_source(path)
    assert isinstance(src, SourceText)
    assert src.text == data.decode("utf-8")
    assert (src.encoding, src.format, src.warnings) == ("utf-8", "txt", ())
    assert src.sha256 == hashlib.sha256(data).hexdigest()
    assert src.path == str(path)


def test_str_path_and_markdown(tmp_path: Path) -> None:
    data = f"# 标题\n\n- {SENTENCE}\n".encode()
    path = write(tmp_path, "a.markdown", data)
    src = read_source(str(path))
    assert src.path == str(path)
    assert (src.text, src.format) == (data.decode(), "md")


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.txt", b"\xef\xbb\xbf" + SENTENCE.encode())
    src = read_source(path)
    assert (src.text, src.encoding) == (SENTENCE, "utf-8-sig")


def test_gbk(tmp_path: Path) -> None:
    path = write(tmp_path, "gbk.txt", SENTENCE.encode("gbk"))
    src = read_source(path)
    assert (src.text, src.encoding) == (SENTENCE, "gb18030")


def test_gbk_traditional_chinese(tmp_path: Path) -> None:
    text = "2023年臨沂市郯城縣政府工作報告\n各位代表：現在，我代表縣人民政府，向大會作工作報告，請予審議。\n"
    path = write(tmp_path, "trad.txt", text.encode("gbk"))
    assert read_source(path).text == text


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(tmp_path: Path, codec: str) -> None:
    bom = b"\xff\xfe" if codec.endswith("le") else b"\xfe\xff"
    path = write(tmp_path, "u16.txt", bom + f"{SENTENCE}\n第二行".encode(codec))
    src = read_source(path)
    assert src.text == f"{SENTENCE}\n第二行"
    assert src.encoding == "utf-16"


def test_line_endings_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "crlf.txt", "第一行\r\n第二行\r第三行\n".encode())
    src = read_source(path)
    assert src.text == "第一行\n第二行\n第三行\n"
    assert len(src.warnings) == 1 and "line endings" in src.warnings[0]


def test_text_kept_as_written(tmp_path: Path) -> None:
    text = "  ??县政府??  \u3000一、总体要求（2023）\u00a0\tGDP增长6%\n\n\n\nend  "
    path = write(tmp_path, "keep.txt", text.encode())
    assert read_source(path).text == text


@pytest.mark.parametrize("name", sorted(p.name for p in SEEDS.glob("*.txt")))
def test_seed_round_trip(name: str) -> None:
    raw = (SEEDS / name).read_bytes()
    src = read_source(SEEDS / name)
    assert src.text == raw.decode("utf-8")
    assert (src.encoding, src.warnings) == ("utf-8", ())


def test_five_seeds_present() -> None:
    assert len(list(SEEDS.glob("*.txt"))) >= 5


# --------------------------------------------------------------------------- html

GBK_PAGE = """<!DOCTYPE html>
<html><head><meta charset="gbk"><title>某县人民政府门户网站</title>
<style>.x { color: red }</style>
<script>var menu = "脚本内容";</script></head>
<body>
<div id="nav"><a href="/">首页</a> <a href="/zw">政务公开</a></div>
<div class="breadcrumb">当前位置：首页 &gt; 政务公开 &gt; 通知公告</div>
<header><img src="logo.png">网站头部标志</header>
<div class="main-wrap">
<article>
<h1>关于2023年重点工作任务进展情况的通报</h1>
<p>县发展和改革局：地区生产总值增长7%左右。</p>
<p>第二段<br>换行后的内容</p>
<table>
<tr><th>序号</th><th>任务</th></tr>
<tr><td>1</td><td><p>稳定经济增长</p></td></tr>
</table>
</article>
<aside>相关链接</aside>
</div>
<div class="bdsharebuttonbox">分享到：微信 微博</div>
<div id="comments">网友评论内容</div>
<footer>版权所有：某县人民政府 ICP备案号</footer>
<script>document.write("统计代码");</script>
</body></html>
"""


def test_gbk_html(tmp_path: Path) -> None:
    path = write(tmp_path, "page.html", GBK_PAGE.encode("gbk"))
    src = read_source(path)
    assert (src.format, src.encoding) == ("html", "gb18030")
    lines = src.text.split("\n")
    assert "关于2023年重点工作任务进展情况的通报" in lines
    assert SENTENCE in lines
    assert "第二段" in lines and "换行后的内容" in lines
    assert "序号\t任务" in lines and "1\t稳定经济增长" in lines
    assert "\n\n" + SENTENCE + "\n\n" in src.text
    for chrome in ["首页", "政务公开", "当前位置", "网站头部标志", "脚本内容", "统计代码", "color",
                   "分享到", "网友评论", "版权所有", "相关链接", "门户网站", "<", ">"]:  # fmt: skip
        assert chrome not in src.text, chrome


def test_html_without_article_uses_body(tmp_path: Path) -> None:
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312"></head><body>'
        '<div class="top-nav">导航栏</div><div class="content"><p>一、主要指标</p>\n<p>地区生产总值\n增长6%</p>'
        '<table><tr><td>唯一单元格</td></tr></table></div><div class="foot">主办单位：某县政府</div></body></html>'
    )
    src = read_source(write(tmp_path, "p.htm", page.encode("gb2312")))
    assert src.text == "一、主要指标\n\n地区生产总值增长6%\n\n唯一单元格"


def test_html_utf8_despite_declared_gbk(tmp_path: Path) -> None:
    page = f'<html><head><meta charset="gb2312"></head><body><p>{SENTENCE}</p></body></html>'
    src = read_source(write(tmp_path, "u.html", page.encode("utf-8")))
    assert src.text == SENTENCE
    assert src.encoding == "utf-8"
    assert any("declared charset" in w for w in src.warnings)


def test_html_layout_table_and_utility_classes(tmp_path: Path) -> None:
    """Old CMS pages lay out with nested tables; Bootstrap-like classes must not hide content."""
    page = """<html><body><table width="100%">
<tr><td class="dqwz">您现在的位置：首页 &gt;&gt; 政务公开</td></tr>
<tr><td><table><tr><td class="border-bottom position-relative"><b>2023年重点工作任务</b></td></tr>
<tr><td id="zoom"><p>&nbsp;&nbsp;一、稳定经济增长。</p>
<table border="1"><tr><td>序号</td><td>责任单位</td></tr><tr><td>1</td><td>县发改局<br>县统计局</td></tr></table>
</td></tr></table></td></tr>
<tr><td>【打印本页】【关闭窗口】</td></tr><tr><td class="bottom">主办：县人民政府办公室</td></tr>
</table><pre>  缩进保留\n    两级</pre></body></html>"""
    src = read_source(write(tmp_path, "old.htm", page.encode()))
    assert src.text == (
        "2023年重点工作任务\n\n\u00a0\u00a0一、稳定经济增长。\n\n序号\t责任单位\n1\t县发改局 县统计局"
        "\n\n  缩进保留\n    两级"
    )


def test_html_page_wrapped_in_a_form(tmp_path: Path) -> None:
    """ASP.NET sites wrap the whole page in <form>; only small forms (search boxes) are chrome."""
    page = (
        '<html><body><form id="form1"><div class="menu">导航菜单</div>'
        f'<div class="content"><p>{SENTENCE}</p><p>第二段正文内容较长一些。</p></div>'
        '<form class="search"><input name="q">站内搜索</form></form></body></html>'
    )
    src = read_source(write(tmp_path, "aspx.html", page.encode()))
    assert src.text == f"{SENTENCE}\n\n第二段正文内容较长一些。"


def test_whitespace_only_html(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "blank.html", b"\n  \r\n"), "empty")


def test_html_with_only_chrome_is_rejected(tmp_path: Path) -> None:
    page = "<html><body><nav>首页</nav><script>x()</script></body></html>"
    expect_error(write(tmp_path, "chrome.html", page.encode()), "no readable text")


# --------------------------------------------------------------------------- docx


def make_docx(path: Path) -> Path:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_paragraph(SENTENCE)
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["序号", "任务"], ["1", "稳定经济增长"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("")
    document.add_paragraph("最后一段\t带制表符")
    document.save(str(path))
    return path


def test_docx(tmp_path: Path) -> None:
    src = read_source(make_docx(tmp_path / "report.docx"))
    assert (src.format, src.encoding) == ("docx", "docx")
    assert src.text == f"{SENTENCE}\n\n序号\t任务\n1\t稳定经济增长\n\n最后一段\t带制表符"


def test_docx_merged_cells(tmp_path: Path) -> None:
    """A vertically merged cell has its text once, in the top row, as Word shows it."""
    docx = pytest.importorskip("docx")
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    for r in range(2):
        for c in range(2):
            table.cell(r, c).text = f"{r}{c}"
    table.cell(0, 1).merge(table.cell(1, 1))
    document.save(str(tmp_path / "m.docx"))
    assert read_source(tmp_path / "m.docx").text == "00\t01 11\n10\t"


def test_corrupt_docx(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "bad.docx", os.urandom(2048)), "corrupt docx")


def test_truncated_docx(tmp_path: Path) -> None:
    raw = make_docx(tmp_path / "whole.docx").read_bytes()
    expect_error(write(tmp_path, "half.docx", raw[: len(raw) // 2]), "corrupt docx")


def _with_part(src: Path, dest: Path, name: str, mb: int, byte: bytes = b"\0") -> Path:
    """A copy of the docx ``src`` with one more part of ``mb`` MiB of ``byte`` (compresses to ~1 KB/MB)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        for item in zin.infolist():
            if item.filename != name:
                zout.writestr(item, zin.read(item))
        with zout.open(name, "w", force_zip64=True) as fh:
            for _ in range(mb):
                fh.write(byte * (1 << 20))
    return dest


def test_a_small_docx_with_a_huge_media_part_is_read_without_decompressing_it(tmp_path: Path) -> None:
    """1 GiB of media in a ~1 MB file: only word/document.xml is read, in a bounded process."""
    small = _with_part(make_docx(tmp_path / "base.docx"), tmp_path / "bomb.docx", "word/media/image1.png", 1024)
    assert small.stat().st_size < 3 * MB
    # VmHWM, not ru_maxrss: after vfork+exec ru_maxrss keeps the parent's high-water mark,
    # which is gigabytes when pytest has a model loaded.
    code = ("import re, sys; from llmstruct.ingest.source import read_source; "
            "t = read_source(sys.argv[1]).text; "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print(len(t), int(hwm) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(small)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    chars, peak_mb = map(int, out.stdout.split())
    assert chars > 0 and peak_mb < 400, f"peak {peak_mb} MB"


def test_a_document_xml_over_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    bomb = _with_part(make_docx(tmp_path / "base.docx"), tmp_path / "big.docx", "word/document.xml", 300, b" ")
    expect_error(bomb, "docx too large", "word/document.xml", "256 MB")


def test_legacy_doc_renamed(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512), "legacy", ".doc")


# --------------------------------------------------------------------------- pdf


def make_pdf(path: Path, pages: list[str | None], encrypt: object = None) -> Path:
    """A PDF with one page per entry; None draws only a rectangle (no text layer).

    STSong-Light is a CID font every PDF reader knows, so no font file is needed and
    pypdf maps its glyphs back to Unicode through the font's UniGB-UCS2 encoding.
    """
    pytest.importorskip("reportlab")
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path), encrypt=encrypt)
    for text in pages:
        if text is None:
            pdf.rect(72, 600, 200, 100, fill=1)
        else:
            pdf.setFont("STSong-Light", 12)
            pdf.drawString(72, 720, text)
        pdf.showPage()
    pdf.save()
    return path


def test_pdf_chinese_text_layer(tmp_path: Path) -> None:
    src = read_source(make_pdf(tmp_path / "r.pdf", [SENTENCE, "第二页：一般公共预算收入增长5%。"]))
    assert (src.format, src.encoding) == ("pdf", "pdf")
    assert src.text == f"{SENTENCE}\n\n第二页：一般公共预算收入增长5%。"
    assert src.warnings == ()


def test_pdf_with_a_scanned_page_warns(tmp_path: Path) -> None:
    src = read_source(make_pdf(tmp_path / "mixed.pdf", [SENTENCE, None, "第三页"]))
    assert src.text == f"{SENTENCE}\n\n第三页"
    assert any("text layer" in w and w.endswith(": 2") for w in src.warnings)


def test_a_pdf_with_too_many_pages_is_refused_before_extraction(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    from llmstruct.ingest.pdf import MAX_PDF_PAGES

    writer = PdfWriter()
    for _ in range(MAX_PDF_PAGES + 1):
        writer.add_blank_page(width=72, height=72)
    path = tmp_path / "pages.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    assert path.stat().st_size < MB
    expect_error(path, "PDF too long", f"{MAX_PDF_PAGES + 1} pages", str(MAX_PDF_PAGES))


def test_pdf_extraction_stops_at_its_time_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit of 0 s stops after the first page: the check runs between pages, as they are read."""
    from llmstruct.ingest import pdf

    path = make_pdf(tmp_path / "slow.pdf", [SENTENCE, "第二页", "第三页"])
    monkeypatch.setattr(pdf, "MAX_PDF_SECONDS", 0.0)
    expect_error(path, "stopped at page 2 of 3", "0 s")


def test_pdf_with_owner_password_only(tmp_path: Path) -> None:
    """Government PDFs often forbid printing with an owner password; the text is still readable."""
    encryption = pytest.importorskip("reportlab.lib.pdfencrypt")
    StandardEncryption = encryption.StandardEncryption

    path = make_pdf(tmp_path / "owner.pdf", [SENTENCE], StandardEncryption("", ownerPassword="x", canPrint=0))
    assert read_source(path).text == SENTENCE


def test_pdf_with_user_password(tmp_path: Path) -> None:
    encryption = pytest.importorskip("reportlab.lib.pdfencrypt")
    StandardEncryption = encryption.StandardEncryption

    path = make_pdf(tmp_path / "locked.pdf", [SENTENCE], StandardEncryption("pw", ownerPassword="x"))
    expect_error(path, "password")


def test_scanned_pdf(tmp_path: Path) -> None:
    expect_error(make_pdf(tmp_path / "scan.pdf", [None, None]), "scanned", "OCR")


def test_truncated_pdf(tmp_path: Path) -> None:
    raw = make_pdf(tmp_path / "whole.pdf", [SENTENCE]).read_bytes()
    expect_error(write(tmp_path, "half.pdf", raw[: len(raw) // 2]), "truncated")


def test_corrupt_pdf(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "junk.pdf", b"%PDF-1.4\n" + os.urandom(4096) + b"\n%%EOF\n"), "corrupt PDF")


def test_not_a_pdf(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "fake.pdf", SENTENCE.encode() + b"\n%%EOF"), "PDF header")


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.txt", "not found")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    expect_error(folder, "directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    expect_error(fifo, "not a regular file")


def test_unsupported_suffix(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "sheet.xlsx", b"PK\x03\x04"), "unsupported", ".xlsx")


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}


def test_uppercase_suffix(tmp_path: Path) -> None:
    assert read_source(write(tmp_path, "A.TXT", SENTENCE.encode())).text == SENTENCE


@pytest.mark.parametrize("data", [b"", b" \n\t\r\n  ", "\u3000\u00a0\n".encode()])
def test_empty(tmp_path: Path, data: bytes) -> None:
    expect_error(write(tmp_path, "empty.txt", data), "empty")


def test_binary_with_nul(tmp_path: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    expect_error(write(tmp_path, "image.txt", data), "binary")


def test_binary_control_chars_without_nul(tmp_path: Path) -> None:
    data = bytes(b for b in range(1, 32) if b not in (9, 10, 13)) * 40 + b"abc"
    expect_error(write(tmp_path, "ctrl.md", data), "binary")


def test_undecodable(tmp_path: Path) -> None:
    data = "报告".encode()[:-1] + b" \xff\xfe\x80 end"
    err = expect_error(write(tmp_path, "bad.txt", data), "decode")
    assert "UTF-8" in err.reason and "GB18030" in err.reason


def test_one_bad_byte_in_utf8_is_not_read_as_gbk(tmp_path: Path) -> None:
    """A damaged UTF-8 file must fail loudly, not come back as GB18030 mojibake."""
    raw = bytearray(sorted(SEEDS.glob("*.txt"))[0].read_bytes())
    raw[len(raw) // 2] = 0xFF
    err = expect_error(write(tmp_path, "damaged.txt", bytes(raw)), "decode")
    offset = int(err.reason.split("offset ")[1].split(")")[0])
    assert len(raw) // 2 - 3 <= offset <= len(raw) // 2


def test_latin1_is_not_mistaken_for_gbk(tmp_path: Path) -> None:
    data = ("Der Bürgermeister äußerte sich über die Straßenbahn. " * 5).encode("latin-1")
    data.decode("gb18030")  # decodes "cleanly" into nonsense ideographs
    expect_error(write(tmp_path, "latin.txt", data), "decode")


def test_over_limit_argument(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", SENTENCE.encode() * 200)
    expect_error(path, "too large", "0.001 MB", "LLMSTRUCT_MAX_FILE_MB", max_mb=0.001)


def test_over_default_limit_sparse(tmp_path: Path) -> None:
    """The size comes from stat: a sparse 51 MB file is refused without being read."""
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:
        fh.truncate(51 * 1024 * 1024)
    expect_error(path, "too large", "51.0 MB", "50 MB", "LLMSTRUCT_MAX_FILE_MB")


def test_text_over_the_character_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmstruct.ingest import source

    monkeypatch.setattr(source, "MAX_CHARS", 1000)
    expect_error(write(tmp_path, "long.txt", ("稳定经济增长。" * 200).encode("utf-8")), "text too long", "1,400", "1,000")


def test_limit_from_env_reaches_the_reader_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are read at the edge: LLMSTRUCT_MAX_FILE_MB set for the CLI limits read_source."""
    from typer.testing import CliRunner

    from llmstruct.app.cli import app

    monkeypatch.setenv("LLMSTRUCT_MAX_FILE_MB", "0.0001")
    src = write(tmp_path, "env.txt", SENTENCE.encode() * 20)
    result = CliRunner().invoke(app, ["structure", str(src), "--rules-only", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "too large" in result.output and "0.0001 MB" in result.output


def test_under_limit_argument(tmp_path: Path) -> None:
    assert read_source(write(tmp_path, "ok.txt", SENTENCE.encode()), max_mb=1).text == SENTENCE


def test_errors_never_leak_library_types(tmp_path: Path) -> None:
    for name, data in [("a.pdf", b"%PDF-1.7\n%%EOF"), ("b.docx", b"PK\x03\x04junk"), ("c.html", b"\x00\x01")]:
        with pytest.raises(IngestError):
            read_source(write(tmp_path, name, data))
