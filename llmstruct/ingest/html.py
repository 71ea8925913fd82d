"""HTML: the page's content without site chrome (navigation, breadcrumbs, share bars, footers)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Any

from llmstruct.ingest.common import Rejected
from llmstruct.ingest.plain import GB_FAMILY, decode

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


def read_html(raw: bytes) -> tuple[str, str, list[str]]:
    declared = _declared_charset(raw)
    text, encoding = decode(raw, declared)
    if not text.strip():
        raise Rejected("empty file (only whitespace)")
    warnings: list[str] = []
    if declared and declared != encoding and encoding != "utf-8-sig" and not raw.isascii():
        warnings.append(f"declared charset {declared} does not match the bytes; decoded as {encoding}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if encoding in ("utf-8-sig", "utf-16", "utf-32"):
        text = text.lstrip("\ufeff")
    body = _html_to_text(text)
    if not body.strip():
        raise Rejected("no readable text in the HTML page")
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
    if name in GB_FAMILY:
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
