"""The one atomic writer: a temp file in the same folder, fsynced, then renamed over the target.

Readers never see half a file, and a crash or kill leaves the old file (or none) plus at
most a ``.{name}.XXXXXXXX.tmp`` file that the next write of the same target does not trip
over; ``clean_stale_temps`` removes such leftovers once they are clearly not in use.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
# ".<up to 40 chars of the target name>.<mkstemp's 8 random chars>.tmp"
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX), re.DOTALL)


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file object for ``path`` (text ``"w"`` or binary ``"wb"``): its content replaces
    ``path`` only when the block ends without an error; otherwise the temp file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a short prefix: a target name near the 255-byte limit must still get a temp name
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def clean_stale_temps(folder: Path, older_than_s: float = 3600) -> int:
    """Remove ``atomic_file`` temp files left in ``folder`` (not below it) by killed runs.

    Only regular files named like our temps and untouched for ``older_than_s`` seconds go,
    so a write in progress elsewhere keeps its temp file. Returns how many were removed.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue  # another cleaner or the writer itself got there first
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text)


def write_json_atomic(path: Path, payload: Any, indent: int | None = 2) -> None:
    with atomic_file(path) as f:
        json.dump(payload, f, ensure_ascii=False, indent=indent)
        if indent is not None:
            f.write("\n")
