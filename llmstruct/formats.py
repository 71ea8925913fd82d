"""File-format layer: turn a file on disk into its decoded "original text".

Every later span is an offset into ``SourceText.text``, so this module changes the
text as little as the format allows: plain text keeps every character (only line
endings become ``\\n``); HTML, PDF and DOCX are reduced to their readable text.
Any failure is an ``IngestError`` naming the file and a one-line reason, never a
bare library exception, so batch runs can report the file and go on.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import re
import stat
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmstruct.config import get_settings
from llmstruct.errors import IngestError

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}

_FORMAT_BY_SUFFIX = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}

_MB = 1024 * 1024
_LIMIT_ENV = "LLMSTRUCT_MAX_FILE_MB"
# Uncompressed size allowed for word/document.xml: guards against zip bombs.
_MAX_DOCX_XML_BYTES = 512 * _MB


@dataclass(frozen=True)
class SourceText:
    """Decoded text of one source file plus what is needed to trust and trace it."""

    path: str
    text: str
    encoding: str
    format: str
    sha256: str
    warnings: tuple[str, ...] = ()


class _Reject(Exception):
    """Internal: a reason to refuse the file; read_source turns it into IngestError."""


def read_source(path: str | Path, max_mb: float | None = None) -> SourceText:
    """Read ``path`` and return its text; raise IngestError for anything unreadable.

    ``max_mb`` overrides the configured ``max_file_mb`` (env LLMSTRUCT_MAX_FILE_MB);
    the size is checked from ``stat`` before any byte is read.
    """
    shown = str(path)
    try:
        return _read(Path(path), shown, max_mb)
    except _Reject as exc:
        raise IngestError(shown, str(exc)) from None
    except IngestError:
        raise
    except MemoryError:
        raise IngestError(shown, "out of memory while reading the file") from None
    except RecursionError:
        raise IngestError(shown, "document structure is nested too deeply to read") from None
    except Exception as exc:  # the contract: no bare library exception escapes
        raise IngestError(shown, f"unexpected error while reading: {_describe(exc)}") from None


def _read(p: Path, shown: str, max_mb: float | None) -> SourceText:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise _Reject("file not found") from None
    except PermissionError:
        raise _Reject("permission denied") from None
    except OSError as exc:
        raise _Reject(f"cannot access file: {_describe(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise _Reject("is a directory, not a file")
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown_suffix = f"'{p.suffix}'" if p.suffix else "no suffix"
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise _Reject(f"unsupported file type ({shown_suffix}); supported: {supported}")
    if not stat.S_ISREG(st.st_mode):
        raise _Reject("not a regular file")

    limit_mb = get_settings().max_file_mb if max_mb is None else float(max_mb)
    limit_bytes = int(limit_mb * _MB)
    if st.st_size > limit_bytes:
        raise _Reject(_too_large(st.st_size, limit_mb))
    if st.st_size == 0:
        raise _Reject("empty file (0 bytes)")

    try:
        with p.open("rb") as fh:
            raw = fh.read(limit_bytes + 1)
    except PermissionError:
        raise _Reject("permission denied") from None
    except OSError as exc:
        raise _Reject(f"cannot read file: {_describe(exc)}") from None
    if len(raw) > limit_bytes:
        raise _Reject(_too_large(len(raw), limit_mb))
    if not raw:
        raise _Reject("empty file (0 bytes)")

    fmt = _FORMAT_BY_SUFFIX[suffix]
    reader = {"txt": _read_text, "md": _read_text, "html": _read_html, "pdf": _read_pdf, "docx": _read_docx}[fmt]
    text, encoding, warnings = reader(raw)
    return SourceText(
        path=shown,
        text=text,
        encoding=encoding,
        format=fmt,
        sha256=hashlib.sha256(raw).hexdigest(),
        warnings=tuple(warnings),
    )


def _too_large(size: int, limit_mb: float) -> str:
    return f"file too large: {_fmt_mb(size / _MB)} MB exceeds the limit of {limit_mb:g} MB (raise it with {_LIMIT_ENV})"


def _fmt_mb(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def _describe(exc: BaseException) -> str:
    """One short line for a library exception: its type and the first line of its message."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# ---------------------------------------------------------------------------
# Plain text and byte decoding


_BOMS = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters that real text files do carry: tab, LF, VT, FF, CR, ESC.
_ALLOWED_CONTROLS = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B}
_CONTROL_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b not in _ALLOWED_CONTROLS)
_CONTROL_RATIO = 0.05
_BINARY_SAMPLE = 64 * 1024
_GB_FAMILY = {"gb18030", "gbk", "gb2312", "cp936", "hz"}
_GB2312_SHARE = 0.9


def _read_text(raw: bytes) -> tuple[str, str, list[str]]:
    text, encoding = _decode(raw)
    if not text.strip():
        raise _Reject("empty file (only whitespace)")
    text, warnings = _normalise_newlines(text, note=True)
    return text, encoding, warnings


def _normalise_newlines(text: str, note: bool) -> tuple[str, list[str]]:
    """Turn CRLF and lone CR into LF: the only change made to a plain-text file."""
    if "\r" not in text:
        return text, []
    crlf = text.count("\r\n")
    lone_cr = text.count("\r") - crlf
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not note:
        return text, []
    return text, [f"line endings normalised to \\n ({crlf} CRLF, {lone_cr} CR)"]


def _decode(raw: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode strictly: BOM, then UTF-8, then a declared charset, then GB18030 if it reads as Chinese."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError as exc:
                raise _Reject(f"cannot decode text: invalid {codec} after its byte-order mark ({exc.reason})") from None
            if codec == "utf-8-sig":
                _check_controls(text)
            elif _control_ratio(text) > _CONTROL_RATIO:
                raise _Reject("binary content: too many control characters")
            return text, codec

    if b"\x00" in raw:
        raise _Reject("binary content: contains NUL bytes (or UTF-16 without a byte-order mark)")
    sample = raw[:_BINARY_SAMPLE]
    if len(sample.translate(None, delete=_CONTROL_BYTES)) < len(sample) * (1 - _CONTROL_RATIO):
        raise _Reject("binary content: too many control characters")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    else:
        _check_controls(text)
        return text, "utf-8"

    if declared and declared not in ("utf-8", "gb18030"):
        try:
            text = raw.decode(declared)
        except UnicodeDecodeError:
            pass
        else:
            western = declared in ("latin-1", "iso8859-1", "cp1252", "ascii")
            if not (western and _gb18030_chinese(raw)):
                _check_controls(text)
                return text, declared

    text = _gb18030_chinese(raw)
    if text is not None:
        _check_controls(text)
        return text, "gb18030"
    raise _Reject(_undecodable_reason(raw, utf8_error))


def _gb18030_chinese(raw: bytes) -> str | None:
    """The GB18030 decoding of ``raw`` if it is strict and reads as Chinese, else None.

    Any byte pair with a high lead byte is valid GBK, so Latin-1 or Big5 text often
    decodes "cleanly" into nonsense ideographs. Real GB text keeps almost all its
    characters inside GB2312 (the common repertoire); when it does not (traditional
    characters, rare names) charset-normalizer decides.
    """
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return None
    counts = Counter(ch for ch in text if ord(ch) > 0x7F)
    total = sum(counts.values())
    if total == 0:
        return text
    in_gb2312 = sum(n for ch, n in counts.items() if _in_gb2312(ch))
    if in_gb2312 >= total * _GB2312_SHARE:
        return text
    guess = _guess_encoding(raw)
    return text if guess in _GB_FAMILY else None


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _guess_encoding(raw: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    return best.encoding if best is not None else None


def _undecodable_reason(raw: bytes, utf8_error: UnicodeDecodeError) -> str:
    reason = (
        f"cannot decode text: not valid UTF-8 (bad byte at offset {utf8_error.start}) and not Chinese GB18030/GBK text"
    )
    guess = _guess_encoding(raw)
    if guess and guess not in _GB_FAMILY and guess not in ("utf_8", "utf-8"):
        reason += f" (charset-normalizer guesses {guess}, which is not supported)"
    return reason


def _control_ratio(text: str) -> float:
    sample = text[:_BINARY_SAMPLE]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if (ord(ch) < 0x20 and ord(ch) not in _ALLOWED_CONTROLS) or 0x7F <= ord(ch) <= 0x9F)
    return bad / len(sample)


def _check_controls(text: str) -> None:
    if "\x00" in text:
        raise _Reject("binary content: contains NUL characters")
    if _control_ratio(text) > _CONTROL_RATIO:
        raise _Reject("binary content: too many control characters")


# ---------------------------------------------------------------------------
# HTML


_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)

_DROP_TAGS = [
    "script", "style", "noscript", "template", "head", "title", "meta", "link",
    "nav", "footer", "aside", "form", "iframe", "frame", "frameset", "object",
    "embed", "svg", "canvas", "button", "select", "input", "textarea", "menu", "dialog",
]  # fmt: skip
_DROP_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"}
# id/class words that mark site chrome wherever they appear in a name ("main-nav", "bdsharebuttonbox").
_CHROME_TOKEN = re.compile(
    r"\w*(?:breadcrumb|crumb|copyright|banquan|sidebar|share|comment|footer|navbar|navigation|menu|dqwz)\w*"
    r"|nav\w*|\w+nav",
    re.I,
)
# Generic words ("bottom", "position") mark chrome only as a whole class or id, since utility
# classes such as "border-bottom" or "position-relative" sit on content too.
_CHROME_NAME = re.compile(
    r"(?:foot|bottom|position|location|weizhi|toolbar|topbar|sitemap|skip|share|tools?)"
    r"(?:[-_]?(?:box|wrap|wrapper|bar|con|nav|links?|\d+))?",
    re.I,
)
# Short blocks starting with / containing these are breadcrumbs, share bars or footers.
_CHROME_TEXT = re.compile(
    r"^\s*(?:当前位置|您的位置|您现在的位置|你的位置|当前的位置)|版权所有|Copyright\s*(?:©|\(c\))|打印本页|关闭窗口|分享到",
    re.I,
)
_CHROME_TEXT_MAX = 200
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_PROTECTED = {"html", "body", "article", "main"}

_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details", "dir",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hgroup", "hr", "html", "legend", "li", "main", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_CJK_CHAR = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ROOT_MIN_SHARE = 0.3
# An element holding more than this share of the page's text is never dropped as chrome.
_PAGE_SHARE = 0.5


def _read_html(raw: bytes) -> tuple[str, str, list[str]]:
    declared = _declared_charset(raw)
    text, encoding = _decode(raw, declared)
    if not text.strip():
        raise _Reject("empty file (only whitespace)")
    warnings: list[str] = []
    if declared and declared != encoding and encoding != "utf-8-sig" and not raw.isascii():
        warnings.append(f"declared charset {declared} does not match the bytes; decoded as {encoding}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if encoding in ("utf-8-sig", "utf-16", "utf-32"):
        text = text.lstrip("\ufeff")
    body = _html_to_text(text)
    if not body.strip():
        raise _Reject("no readable text in the HTML page")
    return body, encoding, warnings


def _declared_charset(raw: bytes) -> str | None:
    """The charset a page declares in its first bytes, as a Python codec name (GBK family -> gb18030)."""
    head = raw[:4096]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    if not match:
        return None
    label = match.group(1).decode("ascii", "ignore").lower()
    try:
        name = codecs.lookup(label).name
    except LookupError:
        name = {"x-gbk": "gbk", "gb_2312-80": "gb2312", "x-cp936": "gbk"}.get(label, "")
        if not name:
            return None
        name = codecs.lookup(name).name
    if name in _GB_FAMILY:
        return "gb18030"
    if name.startswith("utf-16") or name.startswith("utf-32"):
        # A page read from bytes without a BOM is never really UTF-16 if it declares so in ASCII.
        return None
    return name


def _html_to_text(markup: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    _strip_chrome(soup)
    root = _content_root(soup)
    return _render(root)


def _strip_chrome(soup: Any) -> None:
    """Remove markup that is never report text: scripts, navigation, footers, share bars."""
    from bs4.element import Tag

    drop_tags = set(_DROP_TAGS) - {"form"}
    total = _weight(soup)
    doomed: list[Any] = []
    # One pruned walk (a removed element's subtree is not visited): bs4's find_all and
    # .decomposed scan whole subtrees and make deep or large pages quadratic.
    stack: list[tuple[Any, bool]] = [(soup, False)]
    while stack:
        el, in_article = stack.pop()
        if el.name not in _PROTECTED and el is not soup:
            if el.name in drop_tags:
                doomed.append(el)
                continue
            if (el.name == "form" or _is_chrome_element(el)) and not _holds_the_page(el, total):
                # ASP.NET pages wrap the whole page in one <form>, and odd class names sit on
                # wrappers: losing the report is worse than keeping a menu.
                doomed.append(el)
                continue
            if el.name == "header" and not in_article:
                # A <header> inside an <article> carries the article title; elsewhere it is site chrome.
                doomed.append(el)
                continue
        inner = in_article or el.name == "article"
        stack.extend((c, inner) for c in reversed(el.contents) if isinstance(c, Tag))
    for el in doomed:
        el.decompose()

    blocks: dict[int, Any] = {}
    for string in soup.find_all(string=_CHROME_TEXT):
        block = string.parent
        while block is not None and block.name not in _BLOCK_TAGS:
            block = block.parent
        if block is None or block.name in _PROTECTED or id(block) in blocks:
            continue
        if len(block.get_text(strip=True)) <= _CHROME_TEXT_MAX and not block.find(["article", "main"]):
            blocks[id(block)] = block
    for el in blocks.values():
        if not any(id(a) in blocks for a in el.parents):
            el.extract()


def _tags_below(el: Any) -> Iterator[Any]:
    from bs4.element import Tag

    return (d for d in el.descendants if isinstance(d, Tag))


def _child_tags(el: Any, names: tuple[str, ...]) -> list[Any]:
    from bs4.element import Tag

    return [c for c in el.children if isinstance(c, Tag) and c.name in names]


def _is_chrome_element(el: Any) -> bool:
    attrs = el.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if _HIDDEN_STYLE.search(str(attrs.get("style", ""))):
        return True
    if str(attrs.get("role", "")).lower() in _DROP_ROLES:
        return True
    classes = attrs.get("class") or []
    if isinstance(classes, str):
        classes = [classes]
    names = [*classes, str(attrs.get("id", ""))]
    tokens = re.split(r"[^A-Za-z0-9]+", " ".join(names))
    if not any(_CHROME_NAME.fullmatch(n.strip()) for n in names) and not any(
        t and _CHROME_TOKEN.fullmatch(t) for t in tokens
    ):
        return False
    # Never drop a wrapper that holds the article itself.
    return el.find(["article", "main"]) is None


def _content_root(soup: Any) -> Any:
    """The <article>/<main> with the most Chinese text, if it holds a fair share of the page."""
    body = soup.body or soup
    candidates = [el for el in _tags_below(soup) if el.name in ("article", "main") or el.get("role") == "main"]
    if not candidates:
        return body

    best = max(candidates, key=_weight)
    total = _weight(body)
    if total and _weight(best) >= total * _ROOT_MIN_SHARE:
        return best
    return body


def _weight(el: Any) -> int:
    """How much report text an element holds: its Han characters, else its visible characters."""
    text = el.get_text()
    return len(_HAN.findall(text)) or len(text.strip())


def _holds_the_page(el: Any, total: int) -> bool:
    return total > 0 and _weight(el) > total * _PAGE_SHARE


class _Emitter:
    """Collects rendered text, collapsing spaces and paragraph breaks the way a browser shows them."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.at_line_start = True
        self.after_space = False

    def text(self, s: str, verbatim: bool = False) -> None:
        if not verbatim and s and s[0] == " " and (self.at_line_start or self.after_space):
            s = s.lstrip(" ")
        if not s:
            return
        self.parts.append(s)
        self.at_line_start = s.endswith("\n")
        self.after_space = s.endswith(" ")

    def newline(self) -> None:
        self._trim()
        self.parts.append("\n")
        self.at_line_start, self.after_space = True, False

    def paragraph(self) -> None:
        if self.parts:
            self._trim()
            self.parts.append("\n\n")
        self.at_line_start, self.after_space = True, False

    def line(self, s: str) -> None:
        if not self.at_line_start:
            self.newline()
        self.parts.append(s + "\n")
        self.at_line_start, self.after_space = True, False

    def _trim(self) -> None:
        i = len(self.parts) - 1
        while i >= 0:
            trimmed = self.parts[i].rstrip(" ")
            self.parts[i] = trimmed
            if trimmed:
                break
            i -= 1

    def result(self) -> str:
        lines = "".join(self.parts).split("\n")
        out: list[str] = []
        for line in lines:
            line = line.rstrip(" ")
            if not line.strip():
                if out and out[-1] != "":
                    out.append("")
                continue
            out.append(line)
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out)


def _collapse_space(s: str) -> str:
    """Collapse HTML whitespace; a line break between two CJK characters vanishes, as CSS specifies."""

    def repl(m: re.Match[str]) -> str:
        joins_cjk = (
            "\n" in m.group()
            and m.start() > 0
            and m.end() < len(s)
            and _CJK_CHAR.match(s[m.start() - 1])
            and _CJK_CHAR.match(s[m.end()])
        )
        return "" if joins_cjk else " "

    return _HTML_SPACE.sub(repl, s)


def _render(root: Any) -> str:
    """Text of an element: blocks become paragraphs, <br> a line break, data tables tab-separated rows."""
    from bs4.element import NavigableString, PreformattedString, Tag

    out = _Emitter()
    stack: list[tuple[Any, bool, bool]] = [(root, False, False)]
    while stack:
        node, closing, in_pre = stack.pop()
        if closing:
            out.paragraph()
            continue
        if isinstance(node, NavigableString):
            if isinstance(node, PreformattedString):
                continue
            if in_pre:
                out.text(str(node), verbatim=True)
            else:
                out.text(_collapse_space(str(node)))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name == "br":
            out.newline()
            continue
        if name == "table" and _is_data_table(node):
            out.paragraph()
            for row in _table_rows(node):
                out.line(row)
            out.paragraph()
            continue
        if name in _BLOCK_TAGS:
            out.paragraph()
            stack.append((node, True, in_pre))
        child_pre = in_pre or name in ("pre", "textarea", "listing", "xmp")
        for child in reversed(node.contents):
            stack.append((child, False, child_pre))
    return out.result()


def _is_data_table(table: Any) -> bool:
    """A table of data has several cells per row; layout tables (nested, one column) render as blocks."""
    if str(table.get("role", "")).lower() in ("presentation", "none"):
        return False
    rows = []
    for el in _tags_below(table):
        if el.name == "table":
            return False
        if el.name == "tr":
            rows.append(el)
    return any(len(_child_tags(tr, ("td", "th"))) >= 2 for tr in rows)


def _table_rows(table: Any) -> Iterator[str]:
    """Each row on one line, cells separated by a tab (only for tables without nested tables)."""
    for el in _tags_below(table):
        if el.name == "caption":
            text = _cell_text(el)
            if text:
                yield text
        elif el.name == "tr":
            cells = [_cell_text(td) for td in _child_tags(el, ("td", "th"))]
            if any(cells):
                yield "\t".join(cells)


def _cell_text(cell: Any) -> str:
    text = _render(cell)
    return re.sub(r"[ \t]*\n[ \t\n]*", " ", text).replace("\t", " ").strip(" ")


# ---------------------------------------------------------------------------
# PDF


class _ThreadLogCapture(logging.Handler):
    """Collects pypdf's log warnings for this thread only, so they land in SourceText.warnings."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            msg = record.getMessage().strip().splitlines()
            if msg and msg[0] not in self.messages:
                self.messages.append(msg[0][:200])


def _read_pdf(raw: bytes) -> tuple[str, str, list[str]]:
    if b"%PDF-" not in raw[:1024]:
        raise _Reject("corrupt PDF: missing %PDF header (not a PDF file)")
    if b"%%EOF" not in raw[-4096:]:
        raise _Reject("truncated or corrupt PDF: no %%EOF marker at the end of the file")

    import pypdf

    capture = _ThreadLogCapture()
    logger = logging.getLogger("pypdf")
    logger.addHandler(capture)
    try:
        pages, failed = _pdf_pages(pypdf, raw)
    finally:
        logger.removeHandler(capture)

    warnings = [f"pypdf: {m}" for m in capture.messages]
    if failed and len(failed) == len(pages):
        raise _Reject(f"corrupt PDF: text extraction failed on every page ({failed[0][1]})")
    warnings += [f"page {n}: text extraction failed ({why})" for n, why in failed]
    if not any(p.strip() for p in pages):
        raise _Reject("scanned PDF without a text layer; OCR is not supported")
    empty = [str(i + 1) for i, p in enumerate(pages) if not p.strip()]
    if empty:
        warnings.append(f"pages without a text layer (scanned?): {', '.join(empty)}")
    # Pages end in a newline of their own; trim it so pages are separated by exactly one blank line.
    text = "\n\n".join(p.lstrip("\r\n").rstrip() for p in pages if p.strip())
    text, _ = _normalise_newlines(text, note=False)
    return text, "pdf", warnings


def _pdf_pages(pypdf: Any, raw: bytes) -> tuple[list[str], list[tuple[int, str]]]:
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:  # missing crypto backend or broken encryption dict
                raise _Reject(f"encrypted PDF cannot be opened: {_describe(exc)}") from None
            if not ok:
                raise _Reject("password-protected PDF: cannot read without the password")
        page_list = list(reader.pages)
    except _Reject:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        raise _Reject(f"corrupt PDF: {_describe(exc)}") from None
    if not page_list:
        raise _Reject("corrupt PDF: no pages")
    pages: list[str] = []
    failed: list[tuple[int, str]] = []
    for number, page in enumerate(page_list, start=1):
        try:
            pages.append(page.extract_text() or "")
        except Exception as exc:  # one bad page should not lose the others
            pages.append("")
            failed.append((number, _describe(exc)))
    return pages, failed


# ---------------------------------------------------------------------------
# DOCX


def _read_docx(raw: bytes) -> tuple[str, str, list[str]]:
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise _Reject("corrupt docx: this is a legacy Word .doc (OLE) file; save it as .docx")
    if not raw.startswith(b"PK"):
        raise _Reject("corrupt docx: not a zip package")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            info = zf.getinfo("word/document.xml")
    except KeyError:
        raise _Reject("corrupt docx: no word/document.xml in the package") from None
    except Exception as exc:  # zipfile raises several types on damage
        raise _Reject(f"corrupt docx: {_describe(exc)}") from None
    if info.file_size > _MAX_DOCX_XML_BYTES:
        raise _Reject(f"corrupt docx: document.xml expands to {_fmt_mb(info.file_size / _MB)} MB")

    import docx

    try:
        document = docx.Document(io.BytesIO(raw))
        blocks = list(_docx_blocks(document.element.body))
    except Exception as exc:  # python-docx, lxml and zipfile all raise on damage
        raise _Reject(f"corrupt docx: {_describe(exc)}") from None
    text = "\n\n".join(b for b in blocks if b.strip())
    if not text.strip():
        raise _Reject("docx contains no text")
    text, _ = _normalise_newlines(text, note=False)
    return text, "docx", []


def _w(tag: str) -> str:
    from docx.oxml.ns import qn

    return qn(f"w:{tag}")


def _docx_blocks(container: Any) -> Iterator[str]:
    """Paragraph texts and table texts in document order (content controls are opened)."""
    p, tbl, sdt, content = _w("p"), _w("tbl"), _w("sdt"), _w("sdtContent")
    for child in container.iterchildren():
        if child.tag == p:
            yield _docx_paragraph(child)
        elif child.tag == tbl:
            yield "\n".join(_docx_table_rows(child))
        elif child.tag == sdt:
            for inner in child.iterchildren(content):
                yield from _docx_blocks(inner)


def _docx_table_rows(tbl: Any) -> Iterator[str]:
    tr, tc, sdt, content = _w("tr"), _w("tc"), _w("sdt"), _w("sdtContent")
    for row in tbl.iterchildren(tr):
        cells = []
        for cell in _children_through_sdt(row, tc, sdt, content):
            cells.append("" if _is_vmerge_continuation(cell) else _docx_cell_text(cell))
        if any(cells):
            yield "\t".join(cells)


def _children_through_sdt(parent: Any, tag: str, sdt: str, content: str) -> Iterator[Any]:
    for child in parent.iterchildren():
        if child.tag == tag:
            yield child
        elif child.tag == sdt:
            for inner in child.iterchildren(content):
                yield from _children_through_sdt(inner, tag, sdt, content)


def _is_vmerge_continuation(cell: Any) -> bool:
    """A vertically merged cell below the first one: Word shows it empty, so it has no text here."""
    vmerge = cell.find(f"{_w('tcPr')}/{_w('vMerge')}")
    return vmerge is not None and vmerge.get(_w("val"), "continue") == "continue"


def _docx_cell_text(cell: Any) -> str:
    text = " ".join(b for b in _docx_blocks(cell) if b.strip())
    return re.sub(r"[ \t]*\n[ \t\n]*", " ", text).replace("\t", " ").strip(" ")


def _docx_paragraph(p: Any) -> str:
    """Visible text of a paragraph: runs, hyperlinks, fields and tracked insertions, not deletions.

    Walking the XML rather than python-docx's Paragraph.text keeps runs inside w:ins and
    content controls, which that property leaves out.
    """
    t, tab, br, cr, txbx = _w("t"), _w("tab"), _w("br"), _w("cr"), _w("txbxContent")
    nb_hyphen, ptab = _w("noBreakHyphen"), _w("ptab")
    # Properties hold tab-stop definitions (w:tab) that are not text; text boxes float outside the flow.
    skip = {txbx, _w("pPr"), _w("rPr"), _w("del"), _w("moveFrom")}
    parts: list[str] = []
    stack = [p]
    while stack:
        el = stack.pop()
        tag = el.tag
        if tag == t:
            parts.append(el.text or "")
        elif tag in (tab, ptab):
            parts.append("\t")
        elif tag in (br, cr):
            parts.append("\n")
        elif tag == nb_hyphen:
            parts.append("-")
        elif tag in skip:
            continue
        else:
            stack.extend(reversed([c for c in el.iterchildren() if isinstance(c.tag, str)]))
    return "".join(parts)
