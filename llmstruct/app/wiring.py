"""From settings to the library's objects: the backend and the store, built once at the edge."""

from __future__ import annotations

from pathlib import Path

from llmstruct.config import Settings
from llmstruct.models import StructuredBackend, get_backend
from llmstruct.store import Store, open_store


def backend_from_settings(settings: Settings, name: str | None = None, model: str | None = None,
                          endpoint: str | None = None, workers: int = 8) -> StructuredBackend:
    """The configured backend; arguments given on the command line win over settings."""
    name = name or settings.backend
    kw: dict = {}
    endpoint = endpoint or settings.endpoint
    if endpoint and name.lower() == "vllm":
        kw.update(endpoint=endpoint, concurrency=workers)
    elif name.lower() in ("transformers", "hf"):
        kw.update(max_batch=settings.max_batch)
    return get_backend(name, model=model or settings.model, threads=settings.threads, cache_dir=settings.cache_dir,
                       **kw)


def store_from_settings(settings: Settings, path: Path | None = None, url: str | None = None,
                        create: bool = True) -> Store:
    """The store named on the command line, else the configured Chroma server, else the
    embedded store under ``data_dir``."""
    if path is None and not url:
        url = settings.chroma_url or None
        if url is None:
            path = settings.data_dir / "chroma"
    return open_store(path=path, url=url, create=create, cache_dir=settings.cache_dir)
