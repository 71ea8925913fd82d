"""Structuring one untrusted file in a child process with memory and time limits.

An upload is read and structured away from the web server: a crafted file that would take
gigabytes or minutes is stopped by the child's own ``RLIMIT_AS`` and a wall-clock timeout,
and the server lives on. The child writes the records and the decoded text as JSON; the
parent checks them with the schema before anything is indexed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from pydantic import ValidationError

from llmstruct.errors import IngestError
from llmstruct.ingest.source import SourceText
from llmstruct.schema import DocumentRecord

DEFAULT_MEMORY_MB = 1024
DEFAULT_SECONDS = 300.0
_OUT_OF_MEMORY = 3  # the child's exit code when the memory limit stopped it


def structure_isolated(path: Path, max_mb: float | None = None, memory_mb: float = DEFAULT_MEMORY_MB,
                       seconds: float = DEFAULT_SECONDS) -> tuple[list[DocumentRecord], SourceText]:
    """Rules-only records and source of ``path``, computed in a bounded child process.

    Raises IngestError naming the file: for anything the readers refuse, and when the child
    goes over ``memory_mb`` of address space or ``seconds`` of wall time.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.TemporaryDirectory(prefix="llmstruct-worker-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "llmstruct.structure.isolated", str(path), str(out),
               str(max_mb or 0), str(int(memory_mb))]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds)
        except subprocess.TimeoutExpired:
            raise IngestError(path, f"reading and structuring took over {seconds:g} s, the limit for one "
                                    "upload (LLMSTRUCT_UPLOAD_SECONDS); split the file") from None
        if proc.returncode == _OUT_OF_MEMORY or (proc.returncode < 0 and not out.exists()):
            raise IngestError(path, f"reading and structuring needed over {memory_mb:g} MB, the limit for one "
                                    "upload (LLMSTRUCT_UPLOAD_MEMORY_MB); split the file")
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise IngestError(path, f"structuring failed: {last[:300]}")
        data = json.loads(out.read_text(encoding="utf-8"))
    if "error" in data:
        raise IngestError(path, data["error"])
    src = data["source"]
    source = SourceText(**{**src, "warnings": tuple(src.get("warnings", ()))})
    try:
        return [DocumentRecord.model_validate(r) for r in data["records"]], source
    except ValidationError as exc:  # a child of another llmstruct version, or a bug: never index it
        raise IngestError(path, f"structuring gave records that fail the schema ({exc.error_count()} errors)") from None


def _child(argv: list[str]) -> int:
    """The child's side: limit ourselves, then read and structure; errors travel as JSON."""
    import resource

    path, out, max_mb, memory_mb = Path(argv[0]), Path(argv[1]), float(argv[2]) or None, int(argv[3])
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from llmstruct.errors import LlmstructError
    from llmstruct.structure.pipeline import structure_file

    try:
        st = structure_file(path, max_mb)
        payload = {"source": asdict(st.source), "records": [r.model_dump(mode="json") for r in st.records]}
    except MemoryError:
        return _OUT_OF_MEMORY
    except IngestError as exc:
        payload = {"error": exc.reason}
    except LlmstructError as exc:
        payload = {"error": str(exc)}
    try:
        out.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    except MemoryError:
        return _OUT_OF_MEMORY
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
