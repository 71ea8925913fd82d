"""Whatever bytes a file holds, read_source returns sane text or one IngestError line naming it.

Random bytes mostly stop at the first check, so most strategies start from a prefix that
passes it (a PDF header and %%EOF, a zip package, an HTML tag, real UTF-8/GBK text) or mutate
a small valid file, to reach the parsers behind.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from llmstruct.errors import IngestError
from llmstruct.ingest.source import MAX_CHARS, SourceText, read_source

SUFFIXES = [".txt", ".md", ".html", ".pdf", ".docx"]
FORMATS = {".txt": "txt", ".md": "md", ".html": "html", ".pdf": "pdf", ".docx": "docx"}
# Failures that read_source's catch-all turns into IngestError: a reader should have named them itself.
UNEXPECTED = "unexpected error while reading"

FAST = settings(max_examples=50, deadline=None, database=None)

chinese = st.text(alphabet=st.sampled_from("政府工作报告重点任务进展情况完成全年目标增长百分之一二三四五。，、：；（）\n\r\t "
                                             "abcXYZ0123456789%<>&"), min_size=1, max_size=200)
noise = st.binary(max_size=2000)

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def check(suffix: str, raw: bytes) -> None:
    """The property itself: a sane SourceText, or an IngestError that is one line naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"报告{suffix}"
        path.write_bytes(raw)
        try:
            src = read_source(path)
        except IngestError as exc:
            message = str(exc)
            assert exc.path == str(path) and message.startswith(str(path)), message
            assert "\n" not in message and "\r" not in message, message
            assert exc.reason.strip() and UNEXPECTED not in exc.reason, message
            return
    assert isinstance(src, SourceText)
    assert isinstance(src.text, str) and src.text.strip() and len(src.text) <= MAX_CHARS
    assert "\r" not in src.text
    assert src.path == str(path) and src.format == FORMATS[suffix]
    assert isinstance(src.encoding, str) and src.encoding
    assert src.sha256 == hashlib.sha256(raw).hexdigest()
    assert all(isinstance(w, str) and "\n" not in w for w in src.warnings)
    if suffix in (".txt", ".md"):
        assert src.text == src.text.replace("\r", "")


def zip_with(parts: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return buf.getvalue()


def document_xml(paragraphs: list[str]) -> bytes:
    body = "".join(f"<w:p><w:r><w:t xml:space=\"preserve\">{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    return f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'.encode()


def small_pdf(stream: bytes) -> bytes:
    """A one-page PDF with this content stream, offsets in its xref table computed for real."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
         b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


VALID = {
    ".txt": "2026年政府工作报告\r\n重点任务进展情况。\n".encode("gbk"),
    ".md": "# 政府工作报告\n\n全年增长5%左右。\n".encode(),
    ".html": "<html><head><meta charset=\"utf-8\"></head><body><article><p>政府工作报告</p></article></body></html>".encode(),
    ".pdf": small_pdf(b"BT /F1 12 Tf 72 720 Td (Government work report 2026) Tj ET"),
    ".docx": zip_with({"word/document.xml": document_xml(["政府工作报告", "重点任务"])}),
}


@st.composite
def mutated(draw: st.DrawFn, suffix: str) -> bytes:
    """A valid file with a few bytes overwritten, and sometimes cut short or extended."""
    data = bytearray(VALID[suffix])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        return bytes(data)
    cut = draw(st.integers(len(data) // 2, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=64))


def test_the_valid_samples_are_read() -> None:
    """The mutation strategy starts from files that do read, so it explores past the first check."""
    for suffix, raw in VALID.items():
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"ok{suffix}"
            path.write_bytes(raw)
            assert read_source(path).text.strip()


@FAST
@given(st.sampled_from(SUFFIXES), noise)
def test_random_bytes(suffix: str, raw: bytes) -> None:
    check(suffix, raw)


@FAST
@given(st.sampled_from(SUFFIXES), noise)
def test_random_bytes_after_a_valid_looking_prefix(suffix: str, raw: bytes) -> None:
    prefix = {".pdf": b"%PDF-1.4\n", ".docx": b"PK\x03\x04", ".html": b"<html>"}.get(suffix, "政府工作报告".encode())
    check(suffix, prefix + raw + (b"\n%%EOF\n" if suffix == ".pdf" else b""))


@FAST
@given(st.sampled_from([".txt", ".md", ".html"]), chinese, st.sampled_from(["utf-8", "gbk", "utf-16", "utf-8-sig"]),
       noise.map(lambda b: b[:16]))
def test_chinese_text_in_any_supported_encoding_with_trailing_noise(suffix: str, text: str, codec: str,
                                                                    tail: bytes) -> None:
    check(suffix, text.encode(codec) + tail)


@FAST
@given(st.sampled_from(SUFFIXES).flatmap(lambda s: st.tuples(st.just(s), mutated(s))))
def test_mutated_valid_files(case: tuple[str, bytes]) -> None:
    check(*case)


@FAST
@given(st.one_of(st.lists(chinese, max_size=5).map(document_xml), noise, noise.map(lambda b: b"<w:document" + b)))
def test_docx_packages_with_arbitrary_document_xml(xml: bytes) -> None:
    check(".docx", zip_with({"word/document.xml": xml}))


@FAST
@given(st.text(max_size=200))
def test_html_with_arbitrary_markup(markup: str) -> None:
    check(".html", f"<html><body><article>{markup}</article></body></html>".encode())


pdf_operators = st.lists(st.sampled_from([b"BT", b"ET", b"/F1 12 Tf", b"/F9 0 Tf", b"72 720 Td", b"(\xe6\x94\xbf) Tj",
                                          b"(report) Tj", b"[(a) -250 (b)] TJ", b"T*", b"q", b"Q", b"1 0 0 1 0 0 cm",
                                          b"<4e2d> Tj", b"0 Tw", b"(unclosed Tj", b"[", b"]", b"999999999 Tz"]),
                         max_size=30).map(b" ".join)


@FAST
@given(st.one_of(pdf_operators, noise))
def test_pdfs_with_arbitrary_content_streams(stream: bytes) -> None:
    check(".pdf", small_pdf(stream))
