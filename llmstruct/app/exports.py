"""Files staff download: tables as CSV and Excel that no cell can turn into a formula, in
export folders that do not pile up."""

from __future__ import annotations

import atexit
import csv
import io
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_KEEP_SECONDS = 600.0
_EXPORTS: Path | None = None


def inert(cell: object) -> object:
    """A CSV cell a spreadsheet would run as a formula (=, +, -, @) gets a leading ', so a
    document's text can never become a formula on a staff member's machine."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA_START) else cell


def write_table(base: Path, sheet: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """``base``.csv (UTF-8 with BOM, for Excel) and ``base``.xlsx of one table."""
    base.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([[inert(c) for c in r] for r in rows])
    csv_path = base.with_suffix(".csv")
    csv_path.write_text("\ufeff" + buf.getvalue(), encoding="utf-8")
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith(_FORMULA_START):
                cell.data_type = "s"  # shown as written, never evaluated
    xlsx_path = base.with_suffix(".xlsx")
    wb.save(xlsx_path)
    return [str(csv_path), str(xlsx_path)]


def export_folder(now: float | None = None) -> Path:
    """A new folder for one export, inside this process's exports folder: gradio copies the
    files out when the handler returns, so folders older than EXPORT_KEEP_SECONDS are
    removed at each export, and the whole folder when the process exits."""
    global _EXPORTS
    if _EXPORTS is None or not _EXPORTS.is_dir():
        _EXPORTS = Path(tempfile.mkdtemp(prefix="llmstruct-exports-"))
        atexit.register(shutil.rmtree, _EXPORTS, True)
    now = time.time() if now is None else now
    for old in _EXPORTS.iterdir():
        try:
            if now - old.stat().st_mtime > EXPORT_KEEP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:
            continue
    return Path(tempfile.mkdtemp(dir=_EXPORTS))


__all__ = ["EXPORT_KEEP_SECONDS", "export_folder", "inert", "write_table"]
