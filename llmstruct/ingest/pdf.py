"""PDF: the text layer, page by page, with pypdf's warnings kept."""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any

from llmstruct.ingest.common import Rejected, describe
from llmstruct.ingest.plain import normalise_newlines


# Bounds on the work one PDF may cost: a few KB can hold thousands of pages or pages that
# share one huge content stream. Both are checked as extraction goes, never after it.
MAX_PDF_PAGES = 3000
MAX_PDF_SECONDS = 180.0


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


def read_pdf(raw: bytes) -> tuple[str, str, list[str]]:
    if b"%PDF-" not in raw[:1024]:
        raise Rejected("corrupt PDF: missing %PDF header (not a PDF file)")
    if b"%%EOF" not in raw[-4096:]:
        raise Rejected("truncated or corrupt PDF: no %%EOF marker at the end of the file")

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
        raise Rejected(f"corrupt PDF: text extraction failed on every page ({failed[0][1]})")
    warnings += [f"page {n}: text extraction failed ({why})" for n, why in failed]
    if not any(p.strip() for p in pages):
        raise Rejected("scanned PDF without a text layer; OCR is not supported")
    empty = [str(i + 1) for i, p in enumerate(pages) if not p.strip()]
    if empty:
        warnings.append(f"pages without a text layer (scanned?): {', '.join(empty)}")
    # Pages end in a newline of their own; trim it so pages are separated by exactly one blank line.
    text = "\n\n".join(p.lstrip("\r\n").rstrip() for p in pages if p.strip())
    text, _ = normalise_newlines(text, note=False)
    return text, "pdf", warnings


def _pdf_pages(pypdf: Any, raw: bytes) -> tuple[list[str], list[tuple[int, str]]]:
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:  # missing crypto backend or broken encryption dict
                raise Rejected(f"encrypted PDF cannot be opened: {describe(exc)}") from None
            if not ok:
                raise Rejected("password-protected PDF: cannot read without the password")
        page_list = list(reader.pages)
    except Rejected:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        raise Rejected(f"corrupt PDF: {describe(exc)}") from None
    if not page_list:
        raise Rejected("corrupt PDF: no pages")
    if len(page_list) > MAX_PDF_PAGES:
        raise Rejected(f"PDF too long: {len(page_list)} pages, over llmstruct's limit of {MAX_PDF_PAGES}; split the file")
    pages: list[str] = []
    failed: list[tuple[int, str]] = []
    deadline = time.monotonic() + MAX_PDF_SECONDS
    for number, page in enumerate(page_list, start=1):
        if number > 1 and time.monotonic() > deadline:
            raise Rejected(f"PDF text extraction stopped at page {number} of {len(page_list)}: over llmstruct's "
                           f"limit of {MAX_PDF_SECONDS:g} s per file; split the file")
        try:
            pages.append(page.extract_text() or "")
        except Exception as exc:  # one bad page should not lose the others
            pages.append("")
            failed.append((number, describe(exc)))
    return pages, failed
