"""A file on disk to its decoded "original text", the text every later span is an offset into.

Plain text keeps every character (only line endings become ``\n``); HTML, PDF and DOCX are
reduced to their readable text. Any failure is an ``IngestError`` naming the file and a
one-line reason, never a bare library exception, so batch runs can report the file and go on."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

from llmstruct.config import DEFAULT_MAX_FILE_MB
from llmstruct.errors import IngestError
from llmstruct.ingest.common import MB, Rejected, describe, fmt_mb
from llmstruct.ingest.docx import read_docx
from llmstruct.ingest.html import read_html
from llmstruct.ingest.pdf import read_pdf
from llmstruct.ingest.plain import read_text

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

_LIMIT_ENV = "LLMSTRUCT_MAX_FILE_MB"
# Characters one file may give, checked right after reading: structuring, grounding and
# indexing all grow with the text, and nothing real comes near this.
MAX_CHARS = 5_000_000


@dataclass(frozen=True)
class SourceText:
    """Decoded text of one source file plus what is needed to trust and trace it."""

    path: str
    text: str
    encoding: str
    format: str
    sha256: str
    warnings: tuple[str, ...] = ()


def read_source(path: str | Path, max_mb: float | None = None) -> SourceText:
    """Read ``path`` and return its text; raise IngestError for anything unreadable.

    ``max_mb`` is the size limit (default 50 MB; the CLI passes LLMSTRUCT_MAX_FILE_MB);
    the size is checked from ``stat`` before any byte is read.
    """
    shown = str(path)
    try:
        return _read(Path(path), shown, max_mb)
    except Rejected as exc:
        raise IngestError(shown, str(exc)) from None
    except IngestError:
        raise
    except MemoryError:
        raise IngestError(shown, "out of memory while reading the file") from None
    except RecursionError:
        raise IngestError(shown, "document structure is nested too deeply to read") from None
    except Exception as exc:  # the contract: no bare library exception escapes
        raise IngestError(shown, f"unexpected error while reading: {describe(exc)}") from None


def _read(p: Path, shown: str, max_mb: float | None) -> SourceText:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise Rejected("file not found") from None
    except PermissionError:
        raise Rejected("permission denied") from None
    except OSError as exc:
        raise Rejected(f"cannot access file: {describe(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise Rejected("is a directory, not a file")
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown_suffix = f"'{p.suffix}'" if p.suffix else "no suffix"
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise Rejected(f"unsupported file type ({shown_suffix}); supported: {supported}")
    if not stat.S_ISREG(st.st_mode):
        raise Rejected("not a regular file")

    limit_mb = DEFAULT_MAX_FILE_MB if max_mb is None else float(max_mb)
    limit_bytes = int(limit_mb * MB)
    if st.st_size > limit_bytes:
        raise Rejected(_too_large(st.st_size, limit_mb))
    if st.st_size == 0:
        raise Rejected("empty file (0 bytes)")

    try:
        with p.open("rb") as fh:
            raw = fh.read(limit_bytes + 1)
    except PermissionError:
        raise Rejected("permission denied") from None
    except OSError as exc:
        raise Rejected(f"cannot read file: {describe(exc)}") from None
    if len(raw) > limit_bytes:
        raise Rejected(_too_large(len(raw), limit_mb))
    if not raw:
        raise Rejected("empty file (0 bytes)")

    fmt = _FORMAT_BY_SUFFIX[suffix]
    reader = {"txt": read_text, "md": read_text, "html": read_html, "pdf": read_pdf, "docx": read_docx}[fmt]
    text, encoding, warnings = reader(raw)
    if len(text) > MAX_CHARS:
        raise Rejected(f"text too long: {len(text):,} characters, over llmstruct's limit of {MAX_CHARS:,} "
                       "(a provincial work report has about 30,000); split the file")
    return SourceText(
        path=shown,
        text=text,
        encoding=encoding,
        format=fmt,
        sha256=hashlib.sha256(raw).hexdigest(),
        warnings=tuple(warnings),
    )


def _too_large(size: int, limit_mb: float) -> str:
    return f"file too large: {fmt_mb(size / MB)} MB exceeds the limit of {limit_mb:g} MB (raise it with {_LIMIT_ENV})"
