"""Reading sources: one reader per format behind :func:`read_source`."""

from llmstruct.ingest.paths import expand_paths
from llmstruct.ingest.source import SUPPORTED_SUFFIXES, SourceText, read_source

__all__ = ["SUPPORTED_SUFFIXES", "SourceText", "expand_paths", "read_source"]
