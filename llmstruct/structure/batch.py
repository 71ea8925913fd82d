"""Structure a batch of files: what ``llmstruct structure`` runs, without the terminal parts.

One bad file never stops the batch: its error is collected (one line naming the file and
the reason) and the rest go on. Records are written atomically per file only when the
whole file succeeded, so nothing half-written is left. ``run.jsonl`` in the output folder
gets one line per item (time, tokens, retries, grounding, where the answer came from).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmstruct.atomic import atomic_file, clean_stale_temps
from llmstruct.config import default_cache_dir
from llmstruct.errors import LlmstructError
from llmstruct.models.base import StructuredBackend
from llmstruct.schema import DocumentRecord
from llmstruct.structure.llm_pass import (
    Checkpoint,
    LabelCache,
    checkpoint_path,
    count_jobs,
    label_structured,
)
from llmstruct.structure.pipeline import Structured, structure_file, write_records


@dataclass
class BatchResult:
    records: list[DocumentRecord] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class BatchEvents:
    """Callbacks for progress displays (all optional)."""

    on_plan: Callable[[int, int], None] | None = None  # files, items that need the model
    on_items: Callable[[int, int], None] | None = None  # items done, tokens generated
    on_file: Callable[[Path], None] | None = None


def run_batch(
    files: list[Path],
    out_dir: Path,
    *,
    backend: StructuredBackend | None = None,
    resume: bool = False,
    only: set[str] | None = None,
    batch_size: int = 8,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    max_file_mb: float | None = None,
    events: BatchEvents | None = None,
) -> BatchResult:
    """Rules-only when ``backend`` is None, else rules then the model pass."""
    ev = events or BatchEvents()
    t0 = time.perf_counter()
    result = BatchResult()
    clean_stale_temps(Path(out_dir))  # temp files of earlier killed runs
    structured: list[tuple[Path, Structured | None]] = []
    for f in files:
        try:
            structured.append((f, structure_file(f, max_file_mb)))
        except LlmstructError as exc:
            result.failures.append(str(exc))
            structured.append((f, None))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            result.failures.append(f"{f}: unexpected {type(exc).__name__}: {exc}")
            structured.append((f, None))
    _refuse_taken_ids(structured, result.failures)
    if ev.on_plan:
        todo = sum(count_jobs(st, only) for _, st in structured if st is not None) if backend else 0
        ev.on_plan(len(files), todo)
    cache = None
    if backend is not None and use_cache:
        cache = LabelCache((cache_dir or default_cache_dir()) / "labels")
    for f, st in structured:
        if st is None:
            continue
        if ev.on_file:
            ev.on_file(f)
        try:
            records = st.records
            if backend is not None:
                with Checkpoint(checkpoint_path(out_dir, st), resume=resume) as ckpt:
                    run = label_structured(st, backend, cache=cache, checkpoint=ckpt, only=only,
                                           batch_size=batch_size, on_batch=ev.on_items)
                    records = run.records
                    result.items += [{"file": f.name, **asdict(r)} for r in run.items]
                    write_records(records, out_dir)
                    ckpt.remove()
            else:
                write_records(records, out_dir)
            result.records += records
        except LlmstructError as exc:
            result.failures.append(f"{f}: {exc}")
        except Exception as exc:  # noqa: BLE001 - as above
            result.failures.append(f"{f}: unexpected {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - t0
    if backend is not None:
        _write_jsonl(out_dir / "run.jsonl", result.items)
    return result


def _refuse_taken_ids(structured: list[tuple[Path, Structured | None]], failures: list[str]) -> None:
    """Record files are named by doc_id, so a file whose report ids an earlier file of the
    batch already has (a/report.txt and b/report.txt; x.txt's x-01 and a file x-01.txt)
    fails with one line instead of silently overwriting the other's records."""
    taken: dict[str, Path] = {}
    for i, (f, st) in enumerate(structured):
        if st is None:
            continue
        ids = [r.doc_id for r in st.records]
        clash = next((d for d in ids if d in taken), None)
        if clash is not None:
            failures.append(f"{f}: doc_id {clash!r} is already given to {taken[clash]} in this batch "
                            "(records are named <doc_id>.json): rename one file or structure it into another --out")
            structured[i] = (f, None)
            continue
        taken.update((d, f) for d in ids)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """run.jsonl, replaced atomically (a reader never sees a half-written file)."""
    with atomic_file(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


__all__ = ["BatchEvents", "BatchResult", "run_batch"]
