"""Opening a store: an embedded folder marked as ours, or a Chroma server; refuse anything else."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from llmstruct.atomic import write_json_atomic
from llmstruct.config import default_cache_dir
from llmstruct.errors import StoreError
from llmstruct.store.chunks import STORE_VERSION
from llmstruct.store.client import EmbeddedClient, check_server, parse_url
from llmstruct.store.embedding import (
    CachedEmbedder,
    Embedder,
    EmbeddingError,
    chroma_embedding_function,
    default_embedder,
    embedder_config,
    embedder_from_config,
)
from llmstruct.store.store import CHUNKS, DOCUMENTS, ITEMS, SOURCES, Store

STORE_FORMAT = "llmstruct-store"

MARKER = "llmstruct-store.json"


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
    EmbeddedClient.forget(path / "chroma")

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
    for name in (ITEMS, DOCUMENTS, SOURCES, CHUNKS):
        if name not in names:
            store._chroma(f"creating {name}", lambda name=name: client.get_or_create_collection(
                name, embedding_function=ef, metadata=meta if name == CHUNKS else {"llmstruct_store": STORE_VERSION},
                configuration={"hnsw": {"space": "cosine"}}))
    return embedder


def open_store(path: Path | None = None, url: str | None = None, embedder: Embedder | None = None,
               create: bool = True, local_dir: Path | None = None, cache_dir: Path | None = None) -> Store:
    """Open (or create) a store: an embedded folder, or a Chroma server by URL.

    Give exactly one of ``path`` and ``url`` (``app.wiring`` picks them from settings). A
    folder that holds something other than an llmstruct store, or whose data cannot be
    read, raises :class:`StoreError` and is left untouched. ``create=False`` refuses to
    make a new store (for readers: searching a store that does not exist is a mistake).
    ``local_dir`` is where a server store keeps its writer lock and BM25 side index
    (default ``cache_dir/stores/<hash of the URL>``); an embedded store keeps them in its folder.
    """
    if (path is None) == (not url):
        raise StoreError("give either a store folder or a Chroma URL (exactly one)")
    if url:
        host, port, ssl = parse_url(url)
        check_server(url)
        try:
            import chromadb
            from chromadb.config import Settings

            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=Settings(anonymized_telemetry=False))
        except Exception as exc:
            raise StoreError(f"cannot reach the Chroma server at {url}: {exc}") from None
        local = local_dir or (cache_dir or default_cache_dir()) / "stores" / hashlib.sha1(url.encode()).hexdigest()[:16]
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
