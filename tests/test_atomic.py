"""The one atomic writer: all or nothing, readable by others, fine with long names, no stale temps."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

import pytest

from llmstruct.atomic import atomic_file, clean_stale_temps, write_json_atomic


def test_a_name_near_the_limit_is_written(tmp_path):
    target = tmp_path / ("报" * 79 + ".json")  # 242 bytes: a legal name, too long with a temp suffix
    write_json_atomic(target, {"ok": True})
    assert target.read_text(encoding="utf-8").startswith('{\n  "ok": true')
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_an_error_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write("half")
        raise RuntimeError("killed")
    assert target.read_text(encoding="utf-8") == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_stale_temps_go_fresh_ones_and_other_files_stay(tmp_path):
    """A killed run's old temp file is removed; a write in progress and real files are kept."""
    fd, name = tempfile.mkstemp(prefix=".r.json.", suffix=".tmp", dir=tmp_path)  # named as atomic_file names it
    os.close(fd)
    old = Path(name)
    fresh = tmp_path / ".s.json.qq00rr11.tmp"
    kept = [tmp_path / "r.json", tmp_path / "notes.tmp", tmp_path / ".hidden.tmp"]
    sub = tmp_path / "sub"
    sub.mkdir()
    deep = sub / ".t.json.abcdefgh.tmp"
    for p in [old, fresh, deep, *kept]:
        p.write_text("x", encoding="utf-8")
    hour_ago = time.time() - 7200
    for p in [old, deep, *kept]:
        os.utime(p, (hour_ago, hour_ago))
    assert clean_stale_temps(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [fresh, sub, *kept])
    assert deep.exists()
    assert clean_stale_temps(tmp_path / "missing") == 0
