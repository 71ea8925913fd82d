"""The knowledge store: DocumentRecords and chunks of their original text in Chroma.

Three collections hold what retrieval and the structured queries need:

- ``llmstruct_chunks``: passages of the original file text aligned to items (the task text
  and each progress entry, long ones split at sentence ends), with document/item ids and
  the offsets into the original text, so every hit can be cited and checked.
- ``llmstruct_items``: one record per task item, its structured fields as metadata
  (region, year, document, doc type, units by role, leaders, status, seq_no) and the
  item's JSON, so "县统计局配合了哪些任务" is answered from records, not from similarity.
- ``llmstruct_documents``: one entry per report with its full DocumentRecord and the
  content hash that makes indexing idempotent.

Embedded (``chromadb.PersistentClient`` in a folder marked with ``llmstruct-store.json``)
or a Chroma server (``chroma run``) for several users. Writers take an ``fcntl`` lock, and
every write bumps a generation number kept in the chunks collection's metadata, so other
processes know when to reload (Chroma's embedded vector index is per process) and when
the BM25 side index is stale.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from llmstruct.embedding import (
    CachedEmbedder,
    Embedder,
    EmbeddingError,
    chroma_embedding_function,
    default_embedder,
    embedder_config,
    embedder_from_config,
)
from llmstruct.errors import IngestError, LlmstructError
from llmstruct.formats import SUPPORTED_SUFFIXES, SourceText, read_source
from llmstruct.schema import DocumentRecord, Span, TaskItem

STORE_FORMAT = "llmstruct-store"
STORE_VERSION = 1
# Bump when chunking or the searchable text changes: stored documents are then re-indexed.
INDEX_VERSION = "chunks-2"
MARKER = "llmstruct-store.json"
CHUNKS, ITEMS, DOCUMENTS = "llmstruct_chunks", "llmstruct_items", "llmstruct_documents"
MAX_CHUNK_CHARS = 320
_WRITE_BATCH = 1000
_READ_PAGE = 5000

_STATUS_ORDER = ("suspended", "behind", "not_started", "in_progress", "planned", "completed", "unknown")
_DOC_LABEL = {"progress_report": "重点工作进展", "task_list": "重点工作任务", "work_report": "政府工作报告", "other": "文件"}


class StoreError(LlmstructError):
    """The store cannot be opened or written: names the folder or URL and the reason."""


class DocInfo(BaseModel):
    """One indexed report, as listed by :meth:`Store.documents`."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    title: str
    source_file: str
    source_sha256: str
    doc_type: str
    year: str
    region: list[str]
    items: int
    chunks: int
    method: str


class IndexResult(BaseModel):
    """What happened to one document during indexing."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    source_file: str
    action: Literal["added", "replaced", "unchanged", "removed"]
    items: int = 0
    chunks: int = 0


class IndexReport(BaseModel):
    """Outcome of one ``index`` call: per-document results, per-input errors, embedding work."""

    results: list[IndexResult] = []
    errors: list[str] = []
    passages_embedded: int = 0
    passages_from_cache: int = 0
    seconds: float = 0.0

    def merge(self, other: "IndexReport") -> None:
        self.results.extend(other.results)
        self.errors.extend(other.errors)
        self.passages_embedded += other.passages_embedded
        self.passages_from_cache += other.passages_from_cache


@dataclass(frozen=True)
class Chunk:
    """One passage to store: ``text == original[start:end]``; ``search_text`` is what is
    embedded and tokenised (a short context header plus the clean, Simplified text)."""

    chunk_id: str
    doc_id: str
    item_id: str
    kind: Literal["task", "progress"]
    start: int
    end: int
    text: str
    search_text: str
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- chunking

_SENTENCE_END = re.compile(r"[。！？；!?;]+[”’）)]*|\n[ \t\u3000]*\n")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_range(text: str, start: int, end: int, max_chars: int = MAX_CHUNK_CHARS) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into pieces of at most ``max_chars`` at sentence ends.

    Single line breaks are kept inside a piece: in these reports they mostly wrap table
    cells. A sentence longer than ``max_chars`` is cut after its last comma that fits.
    """
    start, end = _trim(text, start, end)
    if end - start <= max_chars:
        return [(start, end)] if end > start else []
    bounds = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]
    if not bounds or bounds[-1] != end:
        bounds.append(end)
    pieces: list[tuple[int, int]] = []
    cur = start
    last = start
    for b in bounds:
        if b - cur <= max_chars:
            last = b
            continue
        if last > cur:
            pieces.append((cur, last))
            cur = last
        while b - cur > max_chars:
            window = text[cur : cur + max_chars]
            comma = max(window.rfind("，"), window.rfind(","), window.rfind("、"))
            cut = cur + (comma + 1 if comma >= max_chars // 3 else max_chars)
            pieces.append((cur, cut))
            cur = cut
        last = b
    if last > cur:
        pieces.append((cur, last))
    out: list[tuple[int, int]] = []
    for a, b in pieces:
        a, b = _trim(text, a, b)
        if b <= a:
            continue
        if out and (b - a) < 40 and (b - out[-1][0]) <= max_chars * 5 // 4:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def item_status(item: TaskItem) -> str | None:
    """The item's status, or the most adverse status of its progress entries."""
    found = [p.status for p in item.progress if p.status]
    if item.status:
        found.append(item.status)
    if not found:
        return None
    return min(found, key=_STATUS_ORDER.index)


def _region_names(rec: DocumentRecord) -> list[str]:
    r = rec.region
    return [n for n in (r.province, r.city, r.county, r.town) if n]


def _place(rec: DocumentRecord) -> str:
    r = rec.region
    return r.town or r.county or r.city or r.province or ""


def _short(text: str, limit: int = 24) -> str:
    first = re.split(r"[。；，,;]", text, maxsplit=1)[0]
    return first[:limit]


def _put(meta: dict[str, Any], key: str, value: Any) -> None:
    """Chroma metadata takes no None and no empty lists: leave such keys out."""
    if value is None or value == "" or value == []:
        return
    if isinstance(value, list):
        value = list(dict.fromkeys(value))
    meta[key] = value


def doc_metadata(rec: DocumentRecord) -> dict[str, Any]:
    """Fields shared by a document's chunks, items and document entry."""
    meta: dict[str, Any] = {}
    _put(meta, "doc_id", rec.doc_id)
    _put(meta, "source_file", rec.source_file)
    _put(meta, "source_stem", Path(rec.source_file).stem)
    _put(meta, "doc_type", rec.doc_type)
    _put(meta, "title", rec.title.name if rec.title else "")
    _put(meta, "year", rec.period or "")
    _put(meta, "region", _region_names(rec))
    for level in ("province", "city", "county", "town"):
        _put(meta, level, getattr(rec.region, level) or "")
    return meta


def item_metadata(rec: DocumentRecord, item: TaskItem) -> dict[str, Any]:
    """Structured fields of one item as filterable Chroma metadata."""
    meta = doc_metadata(rec)
    _put(meta, "item_id", item.item_id)
    if item.seq_no is not None:
        meta["seq_no"] = item.seq_no
    _put(meta, "item_kind", item.kind)
    _put(meta, "heading", item.heading)
    _put(meta, "units", [u.canonical for u in item.units])
    for role in ("lead", "responsible", "cooperating", "reporting"):
        _put(meta, f"units_{role}", [u.canonical for u in item.units if u.role == role])
    _put(meta, "leaders", [ld.name for ld in item.leaders])
    _put(meta, "status", item_status(item))
    statuses = [p.status for p in item.progress if p.status] + ([item.status] if item.status else [])
    _put(meta, "statuses", statuses)
    first = item.task.spans[0]
    meta["start"], meta["end"] = first.start, first.end
    return meta


_ROLE_LABEL = {"lead": "牵头单位", "responsible": "责任单位", "cooperating": "配合单位"}


def _responsibility(item: TaskItem) -> str:
    """Leaders and units of a task as one clause; the task span itself does not hold them."""
    parts = []
    if item.leaders:
        parts.append("责任领导：" + "、".join(dict.fromkeys(ld.name for ld in item.leaders)))
    for role, label in _ROLE_LABEL.items():
        names = list(dict.fromkeys(u.canonical for u in item.units if u.role == role))
        if names:
            parts.append(f"{label}：" + "、".join(names))
    return f"（{'；'.join(parts)}）" if parts else ""


def search_text(original_slice: str) -> str:
    """Clean, Simplified form of a slice of original text (for embedding and BM25)."""
    from llmstruct.retrieval import analyze

    return analyze(original_slice)


def build_chunks(rec: DocumentRecord, original: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Chunks of one record: each task span and each progress span, split when long.

    Each chunk's searchable text starts with a short header (place, year, kind of report;
    for progress also the task's first clause and the reporting unit), because a progress
    paragraph rarely repeats what task it reports on or where.
    """
    place = _place(rec)
    year = f"{rec.period}年" if rec.period else ""
    label = _DOC_LABEL.get(rec.doc_type, "")
    chunks: list[Chunk] = []
    for item in rec.items:
        base = item_metadata(rec, item)
        base.pop("start", None)
        base.pop("end", None)
        title = _short(item.task.text)
        tail = _responsibility(item)
        pieces: list[tuple[str, str, int, int, dict[str, Any]]] = []
        for k, span in enumerate(item.task.spans):
            for j, (a, b) in enumerate(split_range(original, span.start, span.end, max_chars)):
                pieces.append(("task", f"t{k}.{j}", a, b, {}))
        for p_no, prog in enumerate(item.progress):
            extra: dict[str, Any] = {}
            unit = prog.reporting_unit.name if prog.reporting_unit else ""
            _put(extra, "reporting_unit", unit)
            _put(extra, "progress_status", prog.status)
            for k, span in enumerate(prog.text.spans):
                for j, (a, b) in enumerate(split_range(original, span.start, span.end, max_chars)):
                    pieces.append(("progress", f"p{p_no}.{k}.{j}", a, b, extra))
        for kind, suffix, a, b, extra in pieces:
            body = search_text(original[a:b])
            if len(body) < 2:
                continue
            if kind == "task":
                header = f"{place}{year}{label}："
                body += tail
            else:
                unit = extra.get("reporting_unit", "")
                header = f"{place}{year}{label}·{title}{'·' + unit if unit else ''}："
            meta = dict(base)
            meta.update(extra)
            meta.update(kind=kind, start=a, end=b, index_version=INDEX_VERSION)
            chunks.append(Chunk(chunk_id=f"{item.item_id}/{suffix}", doc_id=rec.doc_id, item_id=item.item_id,
                                kind=kind, start=a, end=b, text=original[a:b], search_text=header + body,
                                metadata=meta))
    return chunks


def content_hash(rec: DocumentRecord, embedder_name: str) -> str:
    """Same record, same chunking, same embedder: same hash, nothing to do."""
    payload = json.dumps([STORE_VERSION, INDEX_VERSION, MAX_CHUNK_CHARS, embedder_name,
                          rec.model_dump(mode="json")], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def check_spans(rec: DocumentRecord, original: str) -> None:
    """Every span of the record must be the slice it claims, or offsets would lie."""
    def walk(obj: Any) -> Iterator[Span]:
        if isinstance(obj, Span):
            yield obj
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                yield from walk(getattr(obj, name))
        elif isinstance(obj, list):
            for x in obj:
                yield from walk(x)

    for span in walk(rec):
        if original[span.start : span.end] != span.text:
            raise StoreError(f"{rec.doc_id}: span {span.start}-{span.end} does not match the source text "
                             f"of {rec.source_file}")


# --------------------------------------------------------------------------- clients


class _Embedded:
    """One PersistentClient per store folder and process, reopened when another process
    wrote (Chroma's embedded HNSW index is loaded per process and goes stale)."""

    _registry: dict[str, "_Embedded"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        self.client: Any = None
        self.loaded_generation: int | None = None
        self.lock = threading.RLock()

    @classmethod
    def get(cls, path: Path) -> "_Embedded":
        key = str(path.resolve())
        with cls._registry_lock:
            if key not in cls._registry:
                cls._registry[key] = cls(path)
            return cls._registry[key]

    @classmethod
    def forget(cls, path: Path) -> None:
        """Drop the client of a folder that is being created anew (its old data is gone)."""
        with cls._registry_lock:
            old = cls._registry.pop(str(path.resolve()), None)
        if old is not None and old.client is not None:
            old.client.close()

    def open(self) -> Any:
        with self.lock:
            if self.client is None:
                import chromadb
                from chromadb.config import Settings

                self.client = chromadb.PersistentClient(str(self.path), settings=Settings(anonymized_telemetry=False))
            return self.client

    def reopen(self) -> Any:
        with self.lock:
            if self.client is not None:
                self.client.close()
                self.client = None
            return self.open()


def _parse_url(url: str) -> tuple[str, int, bool]:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StoreError(f"{url}: not a Chroma server URL (expected http://HOST:PORT)")
    ssl = parsed.scheme == "https"
    try:
        port = parsed.port or (443 if ssl else 8000)
    except ValueError:
        raise StoreError(f"{url}: bad port") from None
    return parsed.hostname, port, ssl


def _check_server(url: str, timeout: float = 5.0) -> None:
    """A quick heartbeat with a timeout: chromadb's own client waits forever on a dead host."""
    import httpx

    base = url if "://" in url else f"http://{url}"
    try:
        resp = httpx.get(base.rstrip("/") + "/api/v2/heartbeat", timeout=timeout)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach the Chroma server at {url}: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- the store


class Store:
    """A Chroma-backed store of records and chunks; open it with :func:`open_store`."""

    def __init__(self, *, embedder: Embedder | None, local_dir: Path, path: Path | None = None, url: str | None = None,
                 client: Any = None):
        self.embedder: Embedder = embedder  # type: ignore[assignment]  # set by open_store when None
        self.local_dir = local_dir
        self.path = path
        self.url = url
        self.location = url or str(path)
        self._embedded = _Embedded.get(path / "chroma") if path is not None else None
        self._server_client = client
        self._cols: dict[str, Any] = {}
        self._cols_client: Any = None
        self._retrieval_cache: dict[str, Any] = {}

    # ---- plumbing

    @property
    def client(self) -> Any:
        if self._embedded is not None:
            return self._embedded.open()
        return self._server_client

    def _col(self, name: str) -> Any:
        client = self.client
        if self._cols_client is not client:
            self._cols = {}
            self._cols_client = client
        if name not in self._cols:
            try:
                self._cols[name] = client.get_collection(name, embedding_function=None)
            except Exception as exc:
                raise StoreError(f"{self.location}: collection {name} missing or unreadable: {exc}") from None
        return self._cols[name]

    def _chroma(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one Chroma call; any failure becomes a one-line StoreError naming the store."""
        try:
            return fn()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"{self.location}: {what} failed: {type(exc).__name__}: {exc}") from None

    def _store_metadata(self) -> dict[str, Any]:
        col = self._chroma("reading the store", lambda: self.client.get_collection(CHUNKS, embedding_function=None))
        return dict(col.metadata or {})

    def generation(self) -> int:
        """Bumped by every write; a cheap way for readers to see that something changed."""
        return int(self._store_metadata().get("generation", 0))

    def sync(self) -> int:
        """Reload the embedded client when another process wrote since we loaded it."""
        gen = self.generation()
        emb = self._embedded
        if emb is not None:
            with emb.lock:
                if emb.loaded_generation is None:
                    emb.loaded_generation = gen
                elif emb.loaded_generation != gen:
                    emb.reopen()
                    emb.loaded_generation = gen
        return gen

    def _bump_generation(self) -> int:
        meta = self._store_metadata()
        gen = int(meta.get("generation", 0)) + 1
        meta["generation"] = gen
        meta["updated"] = time.time()
        col = self._col(CHUNKS)
        self._chroma("updating the generation", lambda: col.modify(metadata=meta))
        if self._embedded is not None:
            self._embedded.loaded_generation = gen
        return gen

    @contextmanager
    def write_lock(self, timeout: float = 600.0) -> Iterator[None]:
        """Exclusive writer lock (``fcntl.flock`` on ``.lock`` in the store folder).

        Two writers at once would interleave the delete-then-add of a document; with the
        lock the second waits. For a server store the lock sits in the local cache folder,
        so it covers writers on this machine.
        """
        self.local_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.local_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(f"{self.location}: another writer holds the lock for over {timeout:.0f} s")
                    time.sleep(0.1)
            try:
                self.sync()
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        if isinstance(self.embedder, CachedEmbedder):
            self.embedder.close()

    # ---- reading

    def counts(self) -> dict[str, int]:
        """Number of documents, items and chunks in the store."""
        return {
            "documents": self._chroma("count", lambda: self._col(DOCUMENTS).count()),
            "items": self._chroma("count", lambda: self._col(ITEMS).count()),
            "chunks": self._chroma("count", lambda: self._col(CHUNKS).count()),
        }

    def _get_all(self, name: str, where: dict | None = None, include: tuple[str, ...] = ("metadatas",),
                 page: int = _READ_PAGE) -> Iterator[tuple[str, dict[str, Any], str | None]]:
        col = self._col(name)
        offset = 0
        while True:
            res = self._chroma(f"reading {name}", lambda: col.get(where=where, include=list(include), limit=page,
                                                                    offset=offset))
            ids = res["ids"]
            metas = res.get("metadatas") or [None] * len(ids)
            docs = res.get("documents") or [None] * len(ids)
            for i, m, d in zip(ids, metas, docs, strict=True):
                yield i, dict(m or {}), d
            if len(ids) < page:
                return
            offset += page

    def documents(self) -> list[DocInfo]:
        """Indexed reports with their ids, titles and source files, sorted by doc id."""
        out = []
        for doc_id, m, _ in self._get_all(DOCUMENTS):
            out.append(DocInfo(doc_id=doc_id, title=m.get("title", ""), source_file=m.get("source_file", ""),
                               source_sha256=m.get("source_sha256", ""), doc_type=m.get("doc_type", ""),
                               year=m.get("year", ""), region=list(m.get("region", [])), items=m.get("items", 0),
                               chunks=m.get("chunks", 0), method=m.get("method", "")))
        return sorted(out, key=lambda d: d.doc_id)

    def records(self, doc_id: str | None = None) -> list[DocumentRecord]:
        """The full DocumentRecords as indexed (one or all), sorted by doc id."""
        where = {"doc_id": doc_id} if doc_id else None
        out = []
        for _, _, doc in self._get_all(DOCUMENTS, where=where, include=("documents",), page=200):
            out.append(DocumentRecord.model_validate_json(doc or "{}"))
        return sorted(out, key=lambda r: r.doc_id)

    def item_rows(self, where: dict | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(item_id, metadata) of the item records matching a Chroma ``where``."""
        return [(i, m) for i, m, _ in self._get_all(ITEMS, where=where)]

    def chunk_rows(self, where: dict | None = None) -> Iterator[tuple[str, dict[str, Any], str]]:
        """(chunk_id, metadata, original text) of every chunk, paged."""
        for i, m, d in self._get_all(CHUNKS, where=where, include=("metadatas", "documents")):
            yield i, m, d or ""

    def get_chunks(self, ids: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
        if not ids:
            return {}
        col = self._col(CHUNKS)
        res = self._chroma("reading chunks", lambda: col.get(ids=ids, include=["metadatas", "documents"]))
        return {i: (dict(m or {}), d or "") for i, m, d in zip(res["ids"], res["metadatas"], res["documents"],
                                                               strict=True)}

    def vector_query(self, vector: np.ndarray, n: int, where: dict | None = None,
                     total: int | None = None) -> list[tuple[str, float]]:
        """Nearest chunks by cosine similarity: (chunk_id, similarity), best first.

        ``total`` (the number of chunks, when the caller knows it) saves a count round trip.
        """
        col = self._col(CHUNKS)
        if total is None:
            total = self._chroma("count", col.count)
        if total == 0:
            return []
        n = max(1, min(n, total))
        res = self._chroma("vector query", lambda: col.query(query_embeddings=[np.asarray(vector, np.float32)],
                                                              n_results=n, where=where, include=["distances"]))
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True)]

    # ---- writing

    def _existing(self, source_files: Iterable[str]) -> dict[str, dict[str, Any]]:
        names = sorted(set(source_files))
        if not names:
            return {}
        where = {"source_file": names[0]} if len(names) == 1 else {"source_file": {"$in": names}}
        return {i: m for i, m, _ in self._get_all(DOCUMENTS, where=where)}

    def index_records(self, records: Any, source_text: str | None = None, sources_dir: Path | None = None,
                      progress: Callable[[int, int], None] | None = None) -> IndexReport:
        """Index records (a ``pipeline.Structured`` or DocumentRecords) with their source text.

        ``source_text`` is the original text of the one file the records come from (a
        Structured brings its own); the records are then taken as that file's complete
        set, and stored documents of the file that are no longer in it are removed.
        Without it each record's source is read from ``sources_dir`` (default the seeds
        folder) and its sha256 checked. Unchanged documents (same content hash) are
        skipped; a changed one replaces its old chunks and items.
        """
        t0 = time.perf_counter()
        report = IndexReport()
        if hasattr(records, "records") and hasattr(records, "source"):
            source_text = records.source.text
            records = records.records
        records = list(records)
        if source_text is not None and len({r.source_file for r in records}) > 1:
            raise StoreError("source_text given for records of several files; index them one file at a time")
        complete = source_text is not None
        by_file: dict[str, list[DocumentRecord]] = {}
        for rec in records:
            by_file.setdefault(rec.source_file, []).append(rec)
        planned: list[tuple[DocumentRecord, str]] = []
        for name, recs in by_file.items():
            text = source_text
            if text is None:
                try:
                    text = _locate_source(recs[0], sources_dir)
                except LlmstructError as exc:
                    report.errors.append(str(exc))
                    continue
            for rec in recs:
                try:
                    check_spans(rec, text)
                except StoreError as exc:
                    report.errors.append(str(exc))
                    continue
                planned.append((rec, text))
        files = {rec.source_file for rec, _ in planned}
        self._write(planned, files, report, progress, keep={r.doc_id for r in records} if complete else None)
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _write(self, planned: list[tuple[DocumentRecord, str]], files: set[str], report: IndexReport,
               progress: Callable[[int, int], None] | None, keep: set[str] | None) -> None:
        """Write under the lock; with ``keep`` (the complete doc ids of the files), stored
        documents of these files outside ``keep`` are removed."""
        name = self.embedder.name
        hashes = {rec.doc_id: content_hash(rec, name) for rec, _ in planned}
        existing = self._existing(files)
        todo = [(rec, text) for rec, text in planned
                if existing.get(rec.doc_id, {}).get("content_hash") != hashes[rec.doc_id]]
        prepared = self._prepare(todo, report, progress)
        with self.write_lock():
            existing = self._existing(files)
            changed = False
            for rec, text in planned:
                old = existing.get(rec.doc_id)
                if old is not None and old.get("content_hash") == hashes[rec.doc_id]:
                    report.results.append(IndexResult(doc_id=rec.doc_id, source_file=rec.source_file,
                                                      action="unchanged", items=old.get("items", 0),
                                                      chunks=old.get("chunks", 0)))
                    continue
                if rec.doc_id not in prepared:  # another writer changed it since we looked
                    prepared.update(self._prepare([(rec, text)], report, progress))
                chunks, vectors = prepared[rec.doc_id]
                if old is not None or self._has_rows(rec.doc_id):
                    self._delete_doc(rec.doc_id)
                self._add_doc(rec, chunks, vectors, hashes[rec.doc_id])
                changed = True
                report.results.append(IndexResult(doc_id=rec.doc_id, source_file=rec.source_file,
                                                  action="replaced" if old is not None else "added",
                                                  items=len(rec.items), chunks=len(chunks)))
            for doc_id, meta in sorted(existing.items()):
                if keep is not None and doc_id not in keep:
                    self._delete_doc(doc_id)
                    changed = True
                    report.results.append(IndexResult(doc_id=doc_id, source_file=meta.get("source_file", ""),
                                                      action="removed"))
            if changed:
                self._bump_generation()

    def _prepare(self, todo: list[tuple[DocumentRecord, str]], report: IndexReport,
                 progress: Callable[[int, int], None] | None) -> dict[str, tuple[list[Chunk], np.ndarray]]:
        """Chunks and their vectors, computed before taking the lock (embedding is slow)."""
        per_doc = {rec.doc_id: build_chunks(rec, text) for rec, text in todo}
        texts = [c.search_text for chunks in per_doc.values() for c in chunks]
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, len(texts))

        emb = self.embedder
        try:
            if isinstance(emb, CachedEmbedder):
                before_new, before_hit = emb.passages_embedded, emb.passages_from_cache
                vectors = emb.embed_passages(texts, progress=tick)
                report.passages_embedded += emb.passages_embedded - before_new
                report.passages_from_cache += emb.passages_from_cache - before_hit
            else:
                vectors = emb.embed_passages(texts) if texts else np.zeros((0, emb.dim), np.float32)
                report.passages_embedded += len(texts)
                tick(len(texts))
        except EmbeddingError as exc:
            raise StoreError(f"{self.location}: {exc}") from None
        out: dict[str, tuple[list[Chunk], np.ndarray]] = {}
        pos = 0
        for doc_id, chunks in per_doc.items():
            out[doc_id] = (chunks, vectors[pos : pos + len(chunks)])
            pos += len(chunks)
        return out

    def _has_rows(self, doc_id: str) -> bool:
        col = self._col(CHUNKS)
        res = self._chroma("reading chunks", lambda: col.get(where={"doc_id": doc_id}, limit=1, include=[]))
        return bool(res["ids"])

    def _delete_doc(self, doc_id: str) -> None:
        for name in (CHUNKS, ITEMS, DOCUMENTS):
            col = self._col(name)
            self._chroma(f"deleting {doc_id}", lambda col=col: col.delete(where={"doc_id": doc_id}))

    def _add_doc(self, rec: DocumentRecord, chunks: list[Chunk], vectors: np.ndarray, digest: str) -> None:
        """Chunks first, then items, then the document entry: the document entry (with the
        content hash) is written last, so a crash mid-way leaves the document to be redone."""
        from llmstruct.retrieval import tokenize

        col = self._col(CHUNKS)
        for i in range(0, len(chunks), _WRITE_BATCH):
            batch = chunks[i : i + _WRITE_BATCH]
            metas = [dict(c.metadata, tokens=" ".join(tokenize(c.search_text))) for c in batch]
            self._chroma("adding chunks", lambda batch=batch, metas=metas: col.upsert(
                ids=[c.chunk_id for c in batch], embeddings=vectors[i : i + len(batch)],
                documents=[c.text for c in batch], metadatas=metas))
        first_vec: dict[str, np.ndarray] = {}
        for c, v in zip(chunks, vectors, strict=True):
            first_vec.setdefault(c.item_id, v)
        fallback = _mean_unit(vectors, self.embedder.dim)
        items = rec.items
        icol = self._col(ITEMS)
        for i in range(0, len(items), _WRITE_BATCH):
            batch = items[i : i + _WRITE_BATCH]
            metas = [dict(item_metadata(rec, it), item_json=it.model_dump_json()) for it in batch]
            vecs = np.vstack([first_vec.get(it.item_id, fallback) for it in batch])
            self._chroma("adding items", lambda batch=batch, metas=metas, vecs=vecs: icol.upsert(
                ids=[it.item_id for it in batch], embeddings=vecs, documents=[it.task.text for it in batch],
                metadatas=metas))
        meta = doc_metadata(rec)
        meta.update(source_sha256=rec.source_sha256, content_hash=digest, index_version=INDEX_VERSION,
                    items=len(rec.items), chunks=len(chunks), method=rec.provenance.method, indexed_at=time.time())
        dcol = self._col(DOCUMENTS)
        self._chroma("adding the document", lambda: dcol.upsert(
            ids=[rec.doc_id], embeddings=fallback[None, :], documents=[rec.model_dump_json()], metadatas=[meta]))

    def add_raw_chunks(self, ids: list[str], vectors: np.ndarray, texts: list[str],
                       metadatas: list[dict[str, Any]]) -> None:
        """Add chunks that come with their own vectors and ``tokens`` metadata, in one
        locked write (the scale benchmark fills a synthetic store this way)."""
        col = self._col(CHUNKS)
        with self.write_lock():
            for i in range(0, len(ids), _WRITE_BATCH):
                j = i + _WRITE_BATCH
                self._chroma("adding chunks", lambda i=i, j=j: col.add(
                    ids=ids[i:j], embeddings=vectors[i:j], documents=texts[i:j], metadatas=metadatas[i:j]))
            self._bump_generation()

    def remove(self, doc_id: str) -> bool:
        """Remove one document with its chunks and items; False when it was not there."""
        with self.write_lock():
            found = bool(self._existing_ids([doc_id])) or self._has_rows(doc_id)
            if found:
                self._delete_doc(doc_id)
                self._bump_generation()
        return found

    def _existing_ids(self, doc_ids: list[str]) -> list[str]:
        col = self._col(DOCUMENTS)
        return self._chroma("reading documents", lambda: col.get(ids=doc_ids, include=[]))["ids"]

    def index_paths(self, paths: Iterable[Path], sources_dir: Path | None = None,
                    progress: Callable[[int, int], None] | None = None) -> IndexReport:
        """Index documents (structured by rules first) and/or ``<doc_id>.json`` record files.

        A document whose file (same name, same sha256) is already in the store is not
        structured again: the stored records are reused, whether they came from rules or a
        model pass.
        """
        from llmstruct.pipeline import structure_source

        t0 = time.perf_counter()
        report = IndexReport()
        docs, jsons = _expand(list(paths))
        if not docs and not jsons:
            report.errors.append("no input files (documents or <doc_id>.json records)")
            return report
        by_source: dict[str, list[dict[str, Any]]] = {}
        for _, m, _ in (self._get_all(DOCUMENTS) if docs else []):
            by_source.setdefault(m.get("source_file", ""), []).append(m)
        for f in docs:
            try:
                src: SourceText = read_source(f)
            except IngestError as exc:
                report.errors.append(str(exc))
                continue
            have = by_source.get(Path(src.path).name, [])
            if have and all(m.get("source_sha256") == src.sha256 and m.get("index_version") == INDEX_VERSION
                            for m in have):
                report.results.extend(IndexResult(doc_id=m["doc_id"], source_file=m.get("source_file", ""),
                                                  action="unchanged", items=m.get("items", 0),
                                                  chunks=m.get("chunks", 0)) for m in have)
                continue
            try:
                structured = structure_source(src)
            except LlmstructError as exc:
                report.errors.append(str(exc))
                continue
            except Exception as exc:  # one bad file must not stop the batch
                report.errors.append(f"{f}: cannot structure: {type(exc).__name__}: {exc}")
                continue
            report.merge(self.index_records(structured, progress=progress))
        records: list[DocumentRecord] = []
        for f in jsons:
            try:
                records.append(DocumentRecord.model_validate_json(f.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, ValidationError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                report.errors.append(f"{f}: not a DocumentRecord JSON: {first}")
        if records:
            report.merge(self.index_records(records, sources_dir=sources_dir, progress=progress))
        report.seconds = round(time.perf_counter() - t0, 3)
        return report


def _mean_unit(vectors: np.ndarray, dim: int) -> np.ndarray:
    if len(vectors) == 0:
        v = np.zeros(dim, np.float32)
        v[0] = 1.0
        return v
    m = np.asarray(vectors, np.float32).mean(axis=0)
    n = float(np.linalg.norm(m))
    if n == 0:
        m = np.zeros(dim, np.float32)
        m[0] = 1.0
        return m
    return (m / n).astype(np.float32)


def _expand(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(documents, record JSON files) named directly or found under folders, sorted."""
    docs: list[Path] = []
    jsons: list[Path] = []
    for p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")) if p.is_dir() else [p]
        for f in files:
            suffix = f.suffix.lower()
            if suffix == ".json":
                jsons.append(f)
            elif suffix in SUPPORTED_SUFFIXES or not p.is_dir():
                docs.append(f)
    return docs, jsons


def _locate_source(rec: DocumentRecord, sources_dir: Path | None) -> str:
    """Original text of a record's source file, found by name and checked by sha256."""
    from llmstruct.config import get_settings

    folder = sources_dir or get_settings().seeds_dir
    path = folder / rec.source_file
    if not path.is_file():
        hits = sorted(folder.rglob(rec.source_file)) if folder.is_dir() else []
        if not hits:
            raise StoreError(f"{rec.doc_id}: source file {rec.source_file} not found under {folder} (use --sources)")
        path = hits[0]
    src = read_source(path)
    if src.sha256 != rec.source_sha256:
        raise StoreError(f"{rec.doc_id}: {path} has changed since it was structured (sha256 differs)")
    return src.text


# --------------------------------------------------------------------------- opening


def _read_marker(path: Path) -> dict[str, Any]:
    marker = path / MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: store marker {MARKER} is unreadable ({type(exc).__name__}); "
                         "the folder was left as it is") from None
    if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
        raise StoreError(f"{path}: {MARKER} is not an llmstruct store marker; the folder was left as it is")
    if data.get("version") != STORE_VERSION:
        raise StoreError(f"{path}: store version {data.get('version')} is not supported (expected {STORE_VERSION})")
    return data


def _prepare_folder(path: Path) -> None:
    """Refuse anything that is not an (empty or marked) llmstruct store folder."""
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path}: exists and is not a folder")
    if (path / MARKER).exists():
        _read_marker(path)
        if (path / "chroma").exists() and not (path / "chroma").is_dir():
            raise StoreError(f"{path}: chroma is not a folder; the store is damaged")
        return
    if path.exists() and any(path.iterdir()):
        raise StoreError(f"{path}: not an llmstruct store (no {MARKER}) and not empty; refusing to use it")
    path.mkdir(parents=True, exist_ok=True)
    _Embedded.forget(path / "chroma")
    from llmstruct.pipeline import write_json_atomic

    write_json_atomic(path / MARKER, {"format": STORE_FORMAT, "version": STORE_VERSION, "created": time.time()})


def _open_collections(store: Store, embedder: Embedder | None) -> Embedder:
    """Create the collections in a new store, or check an existing one is ours.

    Returns the embedder to use: the one given, or the one the store was built with.
    """
    client = store.client
    names = store._chroma("listing collections", lambda: {getattr(c, "name", str(c))
                                                          for c in client.list_collections()})
    ours = {CHUNKS, ITEMS, DOCUMENTS}
    if CHUNKS in names:
        meta = store._store_metadata()
        if meta.get("llmstruct_store") != STORE_VERSION:
            raise StoreError(f"{store.location}: collection {CHUNKS} exists but was not made by llmstruct "
                             f"(store version {meta.get('llmstruct_store')!r}); nothing was changed")
        try:
            saved = json.loads(meta.get("embedder_config", "{}"))
        except json.JSONDecodeError:
            saved = {}
        if embedder is None:
            try:
                embedder = CachedEmbedder(embedder_from_config(saved)) if saved.get("kind") != "custom" else None
            except EmbeddingError as exc:
                raise StoreError(f"{store.location}: cannot rebuild the store's embedder: {exc}") from None
            if embedder is None:
                raise StoreError(f"{store.location}: built with a custom embedder {meta.get('embedder')!r}; "
                                 "pass it to open_store")
        if meta.get("embedder") != embedder.name or int(meta.get("dim", 0)) != embedder.dim:
            raise StoreError(f"{store.location}: built with embedder {meta.get('embedder')!r} "
                             f"(dim {meta.get('dim')}), not {embedder.name!r} (dim {embedder.dim})")
    else:
        if names & ours:
            raise StoreError(f"{store.location}: partial llmstruct collections {sorted(names & ours)} without "
                             f"{CHUNKS}; nothing was changed")
        embedder = embedder or default_embedder()
    ef = chroma_embedding_function(embedder)
    meta = {"llmstruct_store": STORE_VERSION, "embedder": embedder.name, "dim": embedder.dim,
            "embedder_config": json.dumps(embedder_config(embedder), ensure_ascii=False), "generation": 0}
    for name in (ITEMS, DOCUMENTS, CHUNKS):
        if name not in names:
            store._chroma(f"creating {name}", lambda name=name: client.get_or_create_collection(
                name, embedding_function=ef, metadata=meta if name == CHUNKS else {"llmstruct_store": STORE_VERSION},
                configuration={"hnsw": {"space": "cosine"}}))
    return embedder


def open_store(path: Path | None = None, url: str | None = None, embedder: Embedder | None = None,
               create: bool = True, local_dir: Path | None = None) -> Store:
    """Open (or create) a store: an embedded folder, or a Chroma server by URL.

    Defaults come from settings: ``chroma_url`` when set, else ``data_dir/"chroma"``. A
    folder that holds something other than an llmstruct store, or whose data cannot be
    read, raises :class:`StoreError` and is left untouched. ``create=False`` refuses to
    make a new store (for readers: searching a store that does not exist is a mistake).
    ``local_dir`` is where a server store keeps its writer lock and BM25 side index
    (default ``cache_dir/stores/<hash of the URL>``); an embedded store keeps them in its folder.
    """
    from llmstruct.config import get_settings

    settings = get_settings()
    if path is not None and url:
        raise StoreError("give either a store folder or a Chroma URL, not both")
    if path is None and not url:
        url = settings.chroma_url or None
        if url is None:
            path = settings.data_dir / "chroma"
    if url:
        host, port, ssl = _parse_url(url)
        _check_server(url)
        try:
            import chromadb
            from chromadb.config import Settings

            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=Settings(anonymized_telemetry=False))
        except Exception as exc:
            raise StoreError(f"cannot reach the Chroma server at {url}: {exc}") from None
        local = local_dir or settings.cache_dir / "stores" / hashlib.sha1(url.encode()).hexdigest()[:16]
        store = Store(embedder=embedder, local_dir=local, url=url, client=client)
    else:
        assert path is not None
        path = Path(path).expanduser()
        if not create and not (path / MARKER).exists():
            raise StoreError(f"{path}: no llmstruct store here; build one with `llmstruct index`")
        _prepare_folder(path)
        store = Store(embedder=embedder, local_dir=path, path=path)
        try:
            store.client
        except Exception as exc:
            raise StoreError(f"{path}: cannot open the Chroma data ({type(exc).__name__}: {exc}); "
                             "the folder was left as it is") from None
    if url and not create:
        names = store._chroma("listing collections", lambda: {getattr(c, "name", str(c))
                                                             for c in store.client.list_collections()})
        if CHUNKS not in names:
            raise StoreError(f"{url}: the Chroma server holds no llmstruct store; build one with `llmstruct index`")
    store.embedder = _open_collections(store, embedder)
    store.sync()
    return store

