"""The knowledge store: records and chunks of their original text in Chroma, with embeddings."""

from llmstruct.errors import StoreError
from llmstruct.store.opening import open_store
from llmstruct.store.store import IndexReport, IndexResult, Store

__all__ = ["IndexReport", "IndexResult", "Store", "StoreError", "open_store"]
