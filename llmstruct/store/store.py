"""The knowledge store: DocumentRecords and chunks of their original text in Chroma.

Five collections: ``llmstruct_chunks`` (a vector per passage, with its ``doc_id`` and the
id of the part that holds its row), ``llmstruct_chunk_rows`` (the passages' rows: offsets
into the original text, metadata, BM25 tokens, text; packed up to 1,000 of one document a part),
``llmstruct_items`` (one record per task item, structured fields as metadata),
``llmstruct_documents`` (one entry per report with its record and content hash) and
``llmstruct_sources`` (each source file's original text, by sha256, so that any process
serving the store can show cited spans without the file on its own disk). Writers
take an ``fcntl`` lock; every write bumps a generation number kept in the chunks
collection's metadata, so other processes know when to reload and when derived indexes
(BM25) are stale."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from llmstruct.errors import LlmstructError, StoreError
from llmstruct.ingest.source import read_source
from llmstruct.schema import DocumentRecord
from llmstruct.store.chunks import (
    INDEX_VERSION,
    Chunk,
    build_chunks,
    check_spans,
    content_hash,
    doc_metadata,
    item_metadata,
)
from llmstruct.store.client import EmbeddedClient
from llmstruct.store.embedding import CachedEmbedder, Embedder, EmbeddingError
from llmstruct.store.rows import Journal, Row, pack_rows, unpack_chunk, unpack_rows
from llmstruct.text.tokens import tokenize

CHUNKS, ITEMS, DOCUMENTS = "llmstruct_chunks", "llmstruct_items", "llmstruct_documents"
SOURCES = "llmstruct_sources"  # added after stores existed: made on first use
ROWS = "llmstruct_chunk_rows"  # likewise
_MADE_ON_USE = (SOURCES, ROWS)

_ROWS_PART = 1000  # chunk rows per part: one compressed metadata value each


def _part_ids(doc_id: str, chunks: int) -> list[str]:
    """The part holding each of a document's chunks, in order."""
    return [f"{doc_id}#rows{k // _ROWS_PART}" for k in range(chunks)]

_WRITE_BATCH = 1000

# Chunks are written in larger batches: Chroma's per-call cost is then paid less often.
_CHUNK_BATCH = 5000

_READ_PAGE = 5000

class IndexedDocument(BaseModel):
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


class Store:
    """A Chroma-backed store of records and chunks; open it with :func:`open_store`."""

    def __init__(self, *, embedder: Embedder | None, local_dir: Path, path: Path | None = None, url: str | None = None,
                 client: Any = None):
        self.embedder: Embedder = embedder  # type: ignore[assignment]  # set by open_store when None
        self.local_dir = local_dir
        self.path = path
        self.url = url
        self.location = url or str(path)
        self._embedded = EmbeddedClient.get(path / "chroma") if path is not None else None
        self._server_client = client
        self._cols: dict[str, Any] = {}
        self._cols_client: Any = None
        self.derived: dict[str, Any] = {}  # indexes derived from the chunks (BM25), keyed by kind
        self.journal = Journal()

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
                get = client.get_or_create_collection if name in _MADE_ON_USE else client.get_collection
                self._cols[name] = get(name, embedding_function=None)
            except Exception as exc:
                raise StoreError(f"{self.location}: collection {name} missing or unreadable: {exc}") from None
        return self._cols[name]

    def _chroma(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one Chroma call; any failure becomes a one-line StoreError naming the store."""
        try:
            if self._embedded is not None:
                with self._embedded.in_use():
                    return fn()
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

    def chunks_version(self) -> str:
        """Identifies the chunks' current content (collection id and generation): derived
        indexes built for another version are stale."""
        gen = self.sync()
        col_id = self._chroma("reading the store", lambda: str(self._col(CHUNKS).id))
        return f"{col_id}:{gen}"

    def chunk_rows_with_vectors(self) -> list[tuple[str, dict[str, Any], str, np.ndarray]]:
        """(chunk_id, metadata, original text, vector) of every chunk (benchmarks copy stores)."""
        col = self._col(CHUNKS)
        res = self._chroma("reading chunks", lambda: col.get(include=["metadatas", "documents", "embeddings"]))
        rows = self._rows_of(res["ids"], res["metadatas"], res["documents"])
        return [(i, *rows[i], np.asarray(e, np.float32)) for i, e in zip(res["ids"], res["embeddings"], strict=True)
                if i in rows]

    def _parts(self, part_ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], str]]:
        """chunk id -> (metadata, text) of the rows in these parts."""
        ids = sorted(set(part_ids))
        out: dict[str, tuple[dict[str, Any], str]] = {}
        col = self._col(ROWS)
        for k in range(0, len(ids), 50):
            res = self._chroma("reading chunk rows", lambda k=k: col.get(ids=ids[k : k + 50], include=["metadatas"]))
            for meta in res["metadatas"]:
                out.update((cid, (m, t)) for cid, m, t in unpack_rows((meta or {}).get("rows", "")))
        return out

    def _rows_of(self, ids: list[str], metas: list[Any], docs: list[Any] | None
                 ) -> dict[str, tuple[dict[str, Any], str]]:
        """(metadata, text) of these chunks, from their parts or from their own entries (older stores)."""
        docs = docs or [None] * len(ids)
        out: dict[str, tuple[dict[str, Any], str]] = {}
        parts: set[str] = set()
        for cid, meta, doc in zip(ids, metas, docs, strict=True):
            if meta and "part" in meta:
                parts.add(meta["part"])
            else:
                out[cid] = unpack_chunk(meta, doc)
        if parts:
            wanted = set(ids)
            out.update((cid, row) for cid, row in self._parts(parts).items() if cid in wanted)
        return out

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
        self.journal.bumped(gen)
        return gen

    @contextmanager
    def write_lock(self, timeout: float = 600.0) -> Iterator[None]:
        """Exclusive writer lock (``fcntl.flock`` on ``.lock`` in the store folder).

        Two writers at once would interleave their writes of a document; with the lock the
        second waits. For a server store the lock sits in the local cache folder,
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
                self.journal.begin(self.sync())
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

    def documents(self) -> list[IndexedDocument]:
        """Indexed reports with their ids, titles and source files, sorted by doc id."""
        out = []
        for doc_id, m, _ in self._get_all(DOCUMENTS):
            out.append(IndexedDocument(doc_id=doc_id, title=m.get("title", ""), source_file=m.get("source_file", ""),
                               source_sha256=m.get("source_sha256", ""), doc_type=m.get("doc_type", ""),
                               year=m.get("year", ""), region=list(m.get("region", [])), items=m.get("items", 0),
                               chunks=m.get("chunks", 0), method=m.get("method", "")))
        return sorted(out, key=lambda d: d.doc_id)

    def document_rows(self) -> list[tuple[str, dict[str, Any]]]:
        """(doc_id, metadata) of every indexed document: source file, sha256, index version, counts."""
        return [(i, m) for i, m, _ in self._get_all(DOCUMENTS)]

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

    def chunk_rows(self, where: dict | None = None) -> Iterator[Row]:
        """(chunk_id, metadata, original text) of every chunk (or of those matching a
        ``doc_id`` where), paged: the chunks' small entries first, then their parts."""
        in_parts: set[str] = set()
        for i, m, d in self._get_all(CHUNKS, where=where, include=("metadatas", "documents")):
            if "part" in m:
                in_parts.add(i)
            else:
                yield i, *unpack_chunk(m, d)
        if not in_parts:
            return
        for _, m, _ in self._get_all(ROWS, where=where, page=50):
            for row in unpack_rows(m.get("rows", "")):
                if row[0] in in_parts:
                    in_parts.discard(row[0])  # a part written twice over (a crash mid-write) counts once
                    yield row

    def get_chunks(self, ids: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
        if not ids:
            return {}
        col = self._col(CHUNKS)
        res = self._chroma("reading chunks", lambda: col.get(ids=ids, include=["metadatas", "documents"]))
        return self._rows_of(res["ids"], res["metadatas"], res["documents"])

    def vector_query(self, vector: np.ndarray, n: int, ids: list[str] | None = None,
                     total: int | None = None) -> list[tuple[str, float]]:
        """Nearest chunks by cosine similarity: (chunk_id, similarity), best first; with
        ``ids``, only among those chunks.

        ``total`` (the number of chunks, when the caller knows it) saves a count round trip.
        """
        col = self._col(CHUNKS)
        if total is None:
            total = self._chroma("count", col.count)
        if total == 0:
            return []
        n = max(1, min(n, total if ids is None else len(ids)))
        res = self._chroma("vector query", lambda: col.query(query_embeddings=[np.asarray(vector, np.float32)],
                                                              n_results=n, ids=ids, include=["distances"]))
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
        Without it each record's source is read from ``sources_dir`` and its sha256 checked. Unchanged documents (same content hash) are
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
            owners = self._owners([rec.doc_id for rec, _ in planned])
            changed = False
            for rec, text in planned:
                owner = owners.get(rec.doc_id)
                if owner is not None and owner != rec.source_file:
                    report.errors.append(f"{rec.source_file}: doc_id {rec.doc_id!r} already belongs to {owner}; "
                                         "it was left as it is (rename the file to index both)")
                    continue
                old = existing.get(rec.doc_id)
                if old is not None and old.get("content_hash") == hashes[rec.doc_id]:
                    report.results.append(IndexResult(doc_id=rec.doc_id, source_file=rec.source_file,
                                                      action="unchanged", items=old.get("items", 0),
                                                      chunks=old.get("chunks", 0)))
                    continue
                if rec.doc_id not in prepared:  # another writer changed it since we looked
                    prepared.update(self._prepare([(rec, text)], report, progress))
                chunks, vectors = prepared[rec.doc_id]
                self._put_source(rec, text, vectors)
                self._add_doc(rec, chunks, vectors, hashes[rec.doc_id])
                self._delete_stale(rec.doc_id, {c.chunk_id for c in chunks}, {it.item_id for it in rec.items},
                                   set(_part_ids(rec.doc_id, len(chunks))))
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
                self._prune_sources()
                self._bump_generation()

    def source_texts(self, sha256s: Iterable[str]) -> dict[str, str]:
        """Original texts of source files by their sha256 (those the store holds)."""
        ids = sorted(set(sha256s))
        if not ids:
            return {}
        col = self._col(SOURCES)
        res = self._chroma("reading sources", lambda: col.get(ids=ids, include=["documents"]))
        return {i: d for i, d in zip(res["ids"], res.get("documents") or [], strict=True) if d is not None}

    def _put_source(self, rec: DocumentRecord, text: str, vectors: np.ndarray) -> None:
        """The record's source text, once per file content (ten reports on one page share it)."""
        col = self._col(SOURCES)
        if self._chroma("reading sources", lambda: col.get(ids=[rec.source_sha256], include=[]))["ids"]:
            return
        vec = _mean_unit(vectors, self.embedder.dim)[None, :]  # Chroma wants a vector; nobody searches these
        self._chroma("adding the source text", lambda: col.upsert(
            ids=[rec.source_sha256], embeddings=vec, documents=[text], metadatas=[{"source_file": rec.source_file}]))

    def _prune_sources(self) -> None:
        """Drop source texts no document refers to any more (replaced or removed uploads)."""
        used = {m.get("source_sha256") for _, m, _ in self._get_all(DOCUMENTS)}
        stale = [i for i, _, _ in self._get_all(SOURCES, include=()) if i not in used]
        if stale:
            col = self._col(SOURCES)
            self._chroma("removing source texts", lambda: col.delete(ids=stale))

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

    def _owners(self, doc_ids: list[str]) -> dict[str, str]:
        """The source file each of these doc ids is indexed from, where it is indexed."""
        if not doc_ids:
            return {}
        col = self._col(DOCUMENTS)
        res = self._chroma("reading documents", lambda: col.get(ids=sorted(set(doc_ids)), include=["metadatas"]))
        return {i: str((m or {}).get("source_file", "")) for i, m in zip(res["ids"], res["metadatas"], strict=True)}

    def _delete_stale(self, doc_id: str, chunk_ids: set[str], item_ids: set[str], part_ids: set[str]) -> None:
        """After the new version is written over the old (same ids are upserted in place), drop
        the old version's rows the new one does not have. Readers in other processes see
        the old version or the new one, never the document missing."""
        for name, keep in ((CHUNKS, chunk_ids), (ITEMS, item_ids), (ROWS, part_ids)):
            col = self._col(name)
            ids = [i for i, _, _ in self._get_all(name, where={"doc_id": doc_id}, include=())]
            stale = [i for i in ids if i not in keep]
            if name == CHUNKS and stale:
                self.journal.add("drop_ids", stale)
            for k in range(0, len(stale), _WRITE_BATCH):
                self._chroma(f"deleting old rows of {doc_id}", lambda col=col, k=k: col.delete(
                    ids=stale[k : k + _WRITE_BATCH]))

    def _delete_doc(self, doc_id: str) -> None:
        self.journal.add("drop_doc", doc_id)
        for name in (CHUNKS, ROWS, ITEMS, DOCUMENTS):
            col = self._col(name)
            self._chroma(f"deleting {doc_id}", lambda col=col: col.delete(where={"doc_id": doc_id}))

    def _add_doc(self, rec: DocumentRecord, chunks: list[Chunk], vectors: np.ndarray, digest: str) -> None:
        """Chunk rows and chunks first, then items, then the document entry, all upserted over
        an older version's rows: the document entry (with the content hash) is written last,
        so a crash mid-way leaves the document to be redone."""
        rows = [(c.chunk_id, dict(c.metadata, tokens=" ".join(tokenize(c.search_text))), c.text) for c in chunks]
        self._put_chunks(rows, vectors, _part_ids(rec.doc_id, len(rows)))
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

    def _put_chunks(self, rows: list[Row], vectors: np.ndarray, part_of: list[str]) -> None:
        """Rows into their parts, then the vectors with ``doc_id`` and ``part``: a vector
        never names a part that is not there. Same ids are written over in place."""
        groups: dict[str, list[int]] = {}
        for k, part in enumerate(part_of):
            groups.setdefault(part, []).append(k)
        rcol = self._col(ROWS)
        names = list(groups)
        for g in range(0, len(names), 20):
            batch = names[g : g + 20]
            metas = [{"doc_id": rows[groups[p][0]][1].get("doc_id", ""), "chunks": len(groups[p]),
                      "rows": pack_rows([rows[k] for k in groups[p]])} for p in batch]
            vecs = np.vstack([_mean_unit(vectors[groups[p]], self.embedder.dim) for p in batch])
            self._chroma("adding chunk rows", lambda batch=batch, metas=metas, vecs=vecs: rcol.upsert(
                ids=batch, embeddings=vecs, metadatas=metas))
        col = self._col(CHUNKS)
        for i in range(0, len(rows), _CHUNK_BATCH):
            batch = rows[i : i + _CHUNK_BATCH]
            metas = [{"doc_id": m.get("doc_id", ""), "part": p}
                     for (_, m, _), p in zip(batch, part_of[i : i + len(batch)], strict=True)]
            self._chroma("adding chunks", lambda batch=batch, metas=metas, i=i: col.upsert(
                ids=[r[0] for r in batch], embeddings=vectors[i : i + len(batch)], metadatas=metas))
            self.journal.add("rows", batch)

    def add_raw_chunks(self, ids: list[str], vectors: np.ndarray, texts: list[str],
                       metadatas: list[dict[str, Any]]) -> None:
        """Add chunks that come with their own vectors and ``tokens`` metadata, in one
        locked write (the scale benchmark fills a synthetic store this way). Parts hold
        consecutive chunks of one document."""
        part_of: list[str] = []
        run = 0
        for k, (cid, meta) in enumerate(zip(ids, metadatas, strict=True)):
            if k == 0 or meta.get("doc_id") != metadatas[k - 1].get("doc_id") or run == _ROWS_PART:
                head, run = f"{meta.get('doc_id', '')}#{cid}", 0
            part_of.append(head)
            run += 1
        with self.write_lock():
            self._put_chunks(list(zip(ids, metadatas, texts, strict=True)), np.asarray(vectors, np.float32), part_of)
            self._bump_generation()

    def remove(self, doc_id: str) -> bool:
        """Remove one document with its chunks and items; False when it was not there."""
        with self.write_lock():
            found = bool(self._existing_ids([doc_id])) or self._has_rows(doc_id)
            if found:
                self._delete_doc(doc_id)
                self._prune_sources()
                self._bump_generation()
        return found

    def _existing_ids(self, doc_ids: list[str]) -> list[str]:
        col = self._col(DOCUMENTS)
        return self._chroma("reading documents", lambda: col.get(ids=doc_ids, include=[]))["ids"]



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


def _locate_source(rec: DocumentRecord, sources_dir: Path | None) -> str:
    """Original text of a record's source file, found by name and checked by sha256."""
    if sources_dir is None:
        raise StoreError(f"{rec.doc_id}: records without their source text need a folder of sources (use --sources)")
    folder = sources_dir
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
