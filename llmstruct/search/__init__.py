"""Search over the store: filters, BM25 on jieba words, vectors, fused; structured item queries."""

from llmstruct.search.hybrid import MODES, search
from llmstruct.search.records import query_items

__all__ = ["MODES", "query_items", "search"]
