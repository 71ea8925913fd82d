"""What every reader shares: the internal rejection and short descriptions of library errors."""

from __future__ import annotations

MB = 1024 * 1024


class Rejected(Exception):
    """Internal: a reason to refuse the file; read_source turns it into IngestError."""


def fmt_mb(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def describe(exc: BaseException) -> str:
    """One short line for a library exception: its type and the first line of its message."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
