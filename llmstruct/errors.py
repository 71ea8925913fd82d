"""Errors that carry the file and a one-line reason, so batch runs can report and go on."""

from __future__ import annotations

from pathlib import Path


class LlmstructError(Exception):
    """Base class for errors shown to users as one line."""


class IngestError(LlmstructError):
    """A source file cannot be read: names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class StoreError(LlmstructError):
    """The store cannot be opened or written: names the folder or URL and the reason."""


class ConfigError(LlmstructError):
    """A setting would make llmstruct unsafe or cannot work: says which and what to set."""
