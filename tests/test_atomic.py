"""The one atomic writer: all or nothing, readable by others, fine with long names."""

from __future__ import annotations

import os
import stat

import pytest

from llmstruct.atomic import atomic_file, write_json_atomic


def test_a_name_near_the_limit_is_written(tmp_path):
    target = tmp_path / ("报" * 79 + ".json")  # 242 bytes: a legal name, too long with a temp suffix
    write_json_atomic(target, {"ok": True})
    assert target.read_text(encoding="utf-8").startswith('{\n  "ok": true')
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_an_error_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert target.read_text(encoding="utf-8") == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
