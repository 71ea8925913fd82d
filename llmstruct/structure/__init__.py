"""Structuring: layout, segmenting, rules, figures, metadata, and the model pass over them."""

from llmstruct.structure.pipeline import (
    Structured,
    structure_file,
    structure_source,
    write_records,
)

__all__ = ["Structured", "structure_file", "structure_source", "write_records"]
