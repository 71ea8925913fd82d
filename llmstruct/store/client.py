"""Chroma clients: one embedded client per folder and process, reopened when another process
wrote; a server heartbeat with a timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from llmstruct.errors import StoreError


class EmbeddedClient:
    """One PersistentClient per store folder and process, reopened when another process
    wrote (Chroma's embedded HNSW index is loaded per process and goes stale)."""

    _registry: dict[str, "EmbeddedClient"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        self.client: Any = None
        self.loaded_generation: int | None = None
        self.lock = threading.RLock()
        self._users = 0  # Chroma calls in flight on the current client
        self._reopening = False
        self._cond = threading.Condition()

    @classmethod
    def get(cls, path: Path) -> "EmbeddedClient":
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

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Around each Chroma call, so a reopen never closes the client under a running query."""
        with self._cond:
            self._cond.wait_for(lambda: not self._reopening)
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    def reopen(self, wait: float = 60.0) -> Any:
        """Close and open again, once the calls in flight are done (new ones wait meanwhile)."""
        with self._cond:
            self._reopening = True
            self._cond.wait_for(lambda: self._users == 0, timeout=wait)
        try:
            with self.lock:
                if self.client is not None:
                    self.client.close()
                    self.client = None
                return self.open()
        finally:
            with self._cond:
                self._reopening = False
                self._cond.notify_all()


def parse_url(url: str) -> tuple[str, int, bool]:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StoreError(f"{url}: not a Chroma server URL (expected http://HOST:PORT)")
    ssl = parsed.scheme == "https"
    try:
        port = parsed.port or (443 if ssl else 8000)
    except ValueError:
        raise StoreError(f"{url}: bad port") from None
    return parsed.hostname, port, ssl


def check_server(url: str, timeout: float = 5.0) -> None:
    """A quick heartbeat with a timeout: chromadb's own client waits forever on a dead host."""
    import httpx

    base = url if "://" in url else f"http://{url}"
    try:
        resp = httpx.get(base.rstrip("/") + "/api/v2/heartbeat", timeout=timeout)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach the Chroma server at {url}: {type(exc).__name__}: {exc}") from None
