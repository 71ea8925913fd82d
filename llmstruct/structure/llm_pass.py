"""The model pass over structured reports: batching, content-hash cache, checkpoints, retries.

``label_structured`` takes the rules-only result of one file and returns its records with
the model's labels applied (see :mod:`llmstruct.labeling` for what the model is asked and
how every label is checked), plus one :class:`ItemRun` per item for ``run.jsonl``.

Why the pieces are here:

- **Cache.** The key of a job hashes prompt version, model id and prompt text, so an
  unchanged item is never sent to a model twice, across runs and output folders.
- **Checkpoint.** After every batch its outputs are appended (and fsynced) to a file in
  the output folder, locked by the run that uses it. ``resume=True`` reads it back (a line
  cut by a kill is dropped), so after ``kill -9``, even repeated, finished batches are not
  redone.
- **Deterministic batches.** Jobs are ordered by prompt length (then key) and cut into
  batches in that order; batches run in order, so the batches left after a kill are exactly
  the batches an uninterrupted run would still have run, and greedy decoding gives the
  same tokens: a resumed run writes the same records as an uninterrupted one.
- **Retry once.** An output that is cut off by the token cap or does not validate is asked
  again once, alone, with the error and a larger cap; a second failure is recorded and the
  item keeps its rules-only values, with a warning on the record.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

from pydantic import ValidationError

from llmstruct import __version__
from llmstruct.atomic import write_json_atomic
from llmstruct.errors import LlmstructError
from llmstruct.models.base import GenerationResult, StructuredBackend
from llmstruct.schema import DocumentRecord, Provenance
from llmstruct.structure.labeling import (
    PROMPT,
    ApplyReport,
    LabelJob,
    apply_labels,
    build_job,
    parse_labels,
)
from llmstruct.structure.pipeline import Structured
from llmstruct.text.prompts import load_template

RETRY_NOTE = "上一次输出无效（{error}）。请严格按要求重新输出紧凑JSON。"


@dataclass(frozen=True)
class ItemRun:
    """What happened to one item: one line of ``run.jsonl``."""

    doc_id: str
    item_id: str
    source: str  # "model", "cache", "checkpoint", "rules" (nothing to ask) or "skipped" (--only)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    valid: bool = True
    truncated: bool = False
    error: str = ""
    asked_figures: int = 0
    asked_progress: int = 0
    indicators: int = 0
    indicators_grounded: int = 0
    cues_grounded: int = 0


@dataclass
class LabelRun:
    records: list[DocumentRecord]
    items: list[ItemRun] = field(default_factory=list)


@dataclass(frozen=True)
class Output:
    """A model answer for one job, as cached and checkpointed."""

    text: str
    valid: bool
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    retries: int
    truncated: bool
    error: str = ""


class LabelCache:
    """Model outputs on disk by job key (content hash); writes are atomic renames."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Output | None:
        try:
            return Output(**json.loads(self._path(key).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, out: Output) -> None:
        write_json_atomic(self._path(key), asdict(out), indent=None)


class Checkpoint:
    """Append-only JSON lines of finished outputs for one source file, locked for one run.

    The file is held under an exclusive ``flock`` while the run uses it, so a second live run
    on the same output folder fails for that file instead of deleting the first run's
    progress. A kill can cut the last line; resuming reads every complete good line (a bad
    one is skipped) and truncates the file after the last good line, so appends never land
    on a cut line and a second kill loses nothing that was finished.
    """

    def __init__(self, path: Path, resume: bool):
        self.path = Path(path)
        self.done: dict[str, Output] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = self._lock()
        try:
            if resume:
                self._read_back(self._fd)
            else:
                os.ftruncate(self._fd, 0)  # an unlocked checkpoint is stale: start afresh
        except BaseException:
            self.close()
            raise

    def _lock(self) -> int:
        """Open and lock the file; retry if it was unlinked (by a finishing run) before we locked it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LlmstructError(f"another run is structuring it (checkpoint {self.path} is in use)") from None
            try:
                now = os.stat(self.path)
                held = os.fstat(fd)
                if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _read_back(self, fd: int) -> None:
        with open(fd, "rb", closefd=False) as f:  # through the locked descriptor: the file we hold
            data = f.read()
        good_end = 0
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            try:
                row = json.loads(data[start:end].decode("utf-8"))
                self.done[row["key"]] = Output(**row["out"])
                good_end = end + 1
            except (ValueError, KeyError, TypeError):
                pass  # a damaged line: its batch is redone, the lines after it still count
            start = end + 1
        if good_end < len(data):  # a cut or bad tail: appends must start on a fresh line
            os.ftruncate(fd, good_end)
            os.fsync(fd)

    def add(self, pairs: Iterable[tuple[str, Output]]) -> None:
        if self._fd is None:
            raise ValueError(f"checkpoint {self.path} is closed")
        rows = list(pairs)
        data = "".join(json.dumps({"key": k, "out": asdict(o)}, ensure_ascii=False) + "\n" for k, o in rows).encode()
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)
        self.done.update(rows)

    def remove(self) -> None:
        """The file's work is written: drop the checkpoint and release the lock.

        Only while the lock is held: once closed, the file may already be another run's."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            self.close()

    def close(self) -> None:
        """Release the lock and keep the file (for a later ``--resume``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _extract_json(text: str) -> str:
    """For the unconstrained baseline: the outermost {...} of a reply (fences and prose dropped)."""
    m = re.search(r"\{.*\}", text, re.DOTALL)
    return m.group(0) if m else text


def _check(job: LabelJob, res: GenerationResult, constrained: bool) -> str:
    """An error message for an unusable output, '' when it validates."""
    if res.truncated:
        return f"cut off at {res.completion_tokens} tokens"
    try:
        parse_labels(job, res.text if constrained else _extract_json(res.text))
    except ValidationError as e:
        first = e.errors()[0]
        return f"{first.get('type')}: {first.get('msg')}"[:160]
    return ""


def ask_model(backend: StructuredBackend, jobs: list[LabelJob], constrained: bool, retry: bool = True) -> list[Output]:
    """One batch through the model, then a lone retry for each output that failed."""
    prompts = [backend.chat_prompt(j.system, j.user) for j in jobs]
    cap = max(j.max_new_tokens for j in jobs)
    if constrained:
        results = backend.generate_json(prompts, [j.schema for j in jobs], cap)
    else:
        results = backend.generate_text(prompts, cap * 3)
    outs: list[Output] = []
    for job, res in zip(jobs, results):
        error = _check(job, res, constrained)
        out = Output(res.text, not error, res.seconds / len(jobs), res.prompt_tokens, res.completion_tokens,
                     0, res.truncated, error)
        if error and retry:
            again = job_with_note(job, error)
            second = ask_model(backend, [again], constrained, retry=False)[0]
            out = Output(second.text, second.valid, out.seconds + second.seconds,
                         out.prompt_tokens + second.prompt_tokens, out.completion_tokens + second.completion_tokens,
                         1, second.truncated, second.error)
        outs.append(out)
    return outs


def job_with_note(job: LabelJob, error: str) -> LabelJob:
    """The same job re-asked with the validation error and twice the token cap."""
    return dataclasses.replace(job, user=job.user + "\n" + RETRY_NOTE.format(error=error), cap_factor=2)


def plan_batches(jobs: list[LabelJob], batch_size: int) -> list[list[LabelJob]]:
    """Similar lengths together (little padding), in an order that does not depend on history."""
    ordered = sorted(jobs, key=lambda j: (len(j.system) + len(j.user), j.key))
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), max(1, batch_size))]


def label_structured(
    st: Structured,
    backend: StructuredBackend,
    *,
    constrained: bool = True,
    cache: LabelCache | None = None,
    checkpoint: Checkpoint | None = None,
    only: set[str] | None = None,
    batch_size: int = 8,
    on_batch: Callable[[int, int], None] | None = None,
) -> LabelRun:
    """Label every item of one structured file; ``on_batch(items_done, tokens)`` reports progress."""
    nt = st.clean
    entries: list[tuple[int, int, LabelJob, bool]] = []
    for r, rec in enumerate(st.records):
        for i, item in enumerate(rec.items):
            wanted = only is None or item.item_id in only or item.item_id.split("#", 1)[-1] in only
            entries.append((r, i, build_job(nt, item, backend.model_id, prompt=wanted), wanted))
    outputs: dict[str, tuple[Output, str]] = {}
    pending: dict[str, LabelJob] = {}
    for _, _, job, wanted in entries:
        if not wanted or not job.needs_model or job.key in outputs or job.key in pending:
            continue
        if checkpoint is not None and job.key in checkpoint.done:
            outputs[job.key] = (checkpoint.done[job.key], "checkpoint")
        elif constrained and cache is not None and (hit := cache.get(job.key)) is not None and hit.valid:
            outputs[job.key] = (hit, "cache")
        else:
            pending[job.key] = job
    for batch in plan_batches(list(pending.values()), batch_size):
        outs = ask_model(backend, batch, constrained)
        for job, out in zip(batch, outs):
            outputs[job.key] = (out, "model")
            if constrained and cache is not None and out.valid:
                cache.put(job.key, out)
        if checkpoint is not None:
            checkpoint.add((j.key, o) for j, o in zip(batch, outs))
        if on_batch is not None:
            on_batch(len(batch), sum(o.completion_tokens for o in outs))

    tpl = load_template(PROMPT)
    provenance = Provenance(
        method="rules+llm", llmstruct_version=__version__, prompt_version=tpl.version, model_id=backend.model_id,
        backend=backend.name,
        decoding={"greedy": True, "constrained": constrained, "grammar": backend.capabilities.grammar or "server",
                  "batch_size": batch_size, "max_new_tokens": "24+6/figure+24/entry (x2 on retry)"},
    )
    runs: list[ItemRun] = []
    new_items: dict[int, list] = {r: list(rec.items) for r, rec in enumerate(st.records)}
    failures: dict[int, list[str]] = {}
    for r, i, job, wanted in entries:
        item = st.records[r].items[i]
        doc_id = st.records[r].doc_id
        report = ApplyReport()
        found = outputs.get(job.key) if wanted and job.needs_model else None
        labels = None
        if found is not None and found[0].valid:
            out = found[0]
            labels = parse_labels(job, out.text if constrained else _extract_json(out.text))
        elif found is not None:
            failures.setdefault(r, []).append(f"{item.item_id}: model output invalid after retry ({found[0].error}); rules-only values kept")
        new_items[r][i] = apply_labels(nt, job, labels, report)
        out = found[0] if found else None
        runs.append(ItemRun(
            doc_id, item.item_id, found[1] if found else ("rules" if wanted else "skipped"),
            seconds=round(out.seconds, 3) if out else 0.0,
            prompt_tokens=out.prompt_tokens if out else 0, completion_tokens=out.completion_tokens if out else 0,
            retries=out.retries if out else 0, valid=out.valid if out else True,
            truncated=out.truncated if out else False, error=out.error if out else "",
            asked_figures=len(job.asked_figures), asked_progress=len(job.asked_blocks),
            indicators=report.indicators, indicators_grounded=report.indicators_grounded,
            cues_grounded=report.cues_grounded,
        ))
    records = [
        rec.model_copy(update={"items": new_items[r], "provenance": provenance,
                               "warnings": rec.warnings + failures.get(r, [])})
        for r, rec in enumerate(st.records)
    ]
    # Round-trip through validation: a record that is not schema-valid must never be written.
    records = [DocumentRecord.model_validate(rec.model_dump()) for rec in records]
    return LabelRun(records=records, items=runs)


def count_jobs(st: Structured, only: set[str] | None = None) -> int:
    """Items of ``st`` that will need the model (for progress bars), before any cache lookup."""
    n = 0
    for rec in st.records:
        for item in rec.items:
            if only is not None and item.item_id not in only and item.item_id.split("#", 1)[-1] not in only:
                continue
            n += build_job(st.clean, item).needs_model
    return n


def checkpoint_path(out_dir: Path, st: Structured) -> Path:
    digest = hashlib.sha256(st.source.sha256.encode()).hexdigest()[:16]
    return Path(out_dir) / ".checkpoints" / f"{Path(st.source.path).stem[:40]}.{digest}.jsonl"


__all__ = ["Checkpoint", "ItemRun", "LabelCache", "LabelRun", "checkpoint_path", "count_jobs", "label_structured"]
