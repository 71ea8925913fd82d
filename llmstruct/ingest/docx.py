"""DOCX: paragraphs and table rows in document order, merged cells once."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from llmstruct.ingest.common import MB, Rejected, describe, fmt_mb
from llmstruct.ingest.plain import normalise_newlines

# Uncompressed size allowed for word/document.xml (the only part read: media and other parts
# are never decompressed, so a small file with a huge image costs nothing).
_MAX_DOCX_XML_BYTES = 256 * MB


def read_docx(raw: bytes) -> tuple[str, str, list[str]]:
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise Rejected("corrupt docx: this is a legacy Word .doc (OLE) file; save it as .docx")
    if not raw.startswith(b"PK"):
        raise Rejected("corrupt docx: not a zip package")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            info = zf.getinfo("word/document.xml")
            if info.file_size > _MAX_DOCX_XML_BYTES:
                raise Rejected(_xml_too_large(info.file_size))
            with zf.open(info) as fh:
                xml = fh.read(_MAX_DOCX_XML_BYTES + 1)  # the header's size may lie: read at most the limit
    except KeyError:
        raise Rejected("corrupt docx: no word/document.xml in the package") from None
    except Rejected:
        raise
    except Exception as exc:  # zipfile raises several types on damage
        raise Rejected(f"corrupt docx: {describe(exc)}") from None
    if len(xml) > _MAX_DOCX_XML_BYTES:
        raise Rejected(_xml_too_large(len(xml)))

    import docx  # noqa: F401  (registers the element classes the parser builds)
    from docx.oxml.parser import parse_xml

    try:
        body = parse_xml(xml).body  # python-docx's parser: entities are never resolved
        blocks = list(_docx_blocks(body))
    except Exception as exc:  # lxml raises on damage
        raise Rejected(f"corrupt docx: {describe(exc)}") from None
    text = "\n\n".join(b for b in blocks if b.strip())
    if not text.strip():
        raise Rejected("docx contains no text")
    text, _ = normalise_newlines(text, note=False)
    return text, "docx", []


def _xml_too_large(size: int) -> str:
    return (f"docx too large: its text part (word/document.xml) expands to {fmt_mb(size / MB)} MB, "
            f"over llmstruct's limit of {_MAX_DOCX_XML_BYTES // MB} MB; split the document")


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
