"""Adding an uploaded report: a name of its own, structured in a bounded child, then indexed.

An upload never takes over another source's report. A file whose content is already
indexed changes nothing; a name that another source's documents already have (``X.md``
beside the indexed ``X.txt``) or an earlier, different upload of the same name is stored
as ``<stem>-<sha256[:8]><suffix>`` unless the user asks to replace that earlier upload.
The file is structured and indexed from a staging copy, and moved into the uploads folder
only when the index has it, so a failed upload leaves the good source and the store as
they were.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llmstruct.errors import IngestError
from llmstruct.ingest.source import SourceText
from llmstruct.schema import DocumentRecord
from llmstruct.store import Store
from llmstruct.structure.isolated import DEFAULT_MEMORY_MB, DEFAULT_SECONDS, structure_isolated
from llmstruct.structure.pipeline import doc_id_for

_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")

# One upload at a time: each may take a worker of DEFAULT_MEMORY_MB, and two of the same
# name must not both decide that the name is free.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class UploadOutcome:
    """What an upload did, for the message staff see."""

    records: list[DocumentRecord]
    source: SourceText | None  # None when nothing changed (the content was indexed already)
    stored_as: str  # the file name in the uploads folder (or of the indexed source it matched)
    action: Literal["added", "replaced", "unchanged"]
    renamed: bool = False  # stored under a new name: the original one belongs to another source
    replaced: list[str] = field(default_factory=list)  # doc ids of the earlier upload replaced or removed


def safe_name(name: str) -> str:
    """The client's file name as a plain name in the uploads folder (no folders, no leading dot)."""
    p = Path(_UNSAFE_NAME.sub("_", Path(name).name))
    stem = p.stem.lstrip(". ")[:100] or "upload"
    return stem + p.suffix.lower()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ids_of(stem: str) -> re.Pattern[str]:
    """The doc ids a file of this stem gets (``x`` or ``x-01`` …)."""
    return re.compile(re.escape(doc_id_for(stem)) + r"(?:-\d{2})?")


def add_upload(path: Path, uploads: Path, store: Store | None, *, replace: bool = False, max_mb: float | None = None,
               memory_mb: float = DEFAULT_MEMORY_MB, seconds: float = DEFAULT_SECONDS) -> UploadOutcome:
    """Structure and index the uploaded file ``path`` (a temp copy from the web server).

    ``replace`` lets an upload take over the documents of an earlier upload of the same
    name; never those of another source. Raises IngestError naming the upload.
    """
    with _LOCK:
        return _add(path, uploads, store, replace, max_mb, memory_mb, seconds)


def _add(path: Path, uploads: Path, store: Store | None, replace: bool, max_mb: float | None, memory_mb: float,
         seconds: float) -> UploadOutcome:
    name = safe_name(path.name)
    digest = _sha256(path)
    rows = store.document_rows() if store is not None else []
    same = sorted(i for i, m in rows if m.get("source_sha256") == digest)
    if same and store is not None:
        recs = [r for d in same for r in store.records(d)]
        return UploadOutcome(recs, None, recs[0].source_file if recs else name, "unchanged")
    stem, suffix = Path(name).stem, Path(name).suffix
    ids = _ids_of(stem)
    others = {m.get("source_file", "") for i, m in rows if ids.fullmatch(i) and m.get("source_file") != name}
    ours = [i for i, m in rows if m.get("source_file") == name]
    earlier_upload = (uploads / name).exists() or bool(ours)
    own_upload = (uploads / name).is_file()
    renamed = bool(others) or (earlier_upload and not (replace and own_upload))
    if renamed:
        name = f"{stem}-{digest[:8]}{suffix}"
    uploads.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=uploads))
    try:
        staged = staging / name
        shutil.copyfile(path, staged)
        records, source = structure_isolated(staged, max_mb, memory_mb, seconds)
        replaced: list[str] = []
        action: Literal["added", "replaced", "unchanged"] = "added"
        if store is not None:
            report = store.index_records(records, source_text=source.text)
            if report.errors:
                raise IngestError(path.name, "；".join(report.errors))
            replaced = sorted(r.doc_id for r in report.results if r.action in ("replaced", "removed"))
            action = "replaced" if replaced else "added"
        os.replace(staged, uploads / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return UploadOutcome(records, source, name, action, renamed, replaced)


__all__ = ["UploadOutcome", "add_upload", "safe_name"]
