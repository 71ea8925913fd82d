"""The CLI on real inputs: a batch with bad files goes on, reports them, leaves no partial output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from helpers import ROOT, SEEDS
from typer.testing import CliRunner

from llmstruct.app.cli import app
from llmstruct.schema import DocumentRecord

runner = CliRunner()


def test_structure_rules_only_all_seeds(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["structure", str(SEEDS), "--out", str(out), "--rules-only"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 14
    for f in out.iterdir():
        DocumentRecord.model_validate(json.loads(f.read_text(encoding="utf-8")))


def test_mixed_folder_reports_each_bad_file_and_writes_the_good(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SEEDS / "001_0bd5adcbd4f51cd8.txt", src / "good.txt")
    (src / "empty.txt").write_bytes(b"")
    (src / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (src / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (src / "latin.txt").write_bytes("r\xe9sum\xe9 \xff\xfe\x80\x81 text".encode("latin-1"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "llmstruct.app.cli", "structure", str(src), "--out", str(out),
                           "--rules-only"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 4, proc.stderr
    for name in ("empty.txt", "binary.txt", "broken.pdf", "latin.txt"):
        assert sum(name in ln for ln in errors) == 1, (name, errors)
    assert [p.name for p in out.iterdir()] == ["good.json"]


def test_all_bad_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "empty.md"
    bad.write_bytes(b"   \n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["structure", str(bad), "--out", str(out), "--rules-only"])
    assert result.exit_code == 2
    assert not out.exists() or not any(out.iterdir())


def test_schema_command_prints_json_schema():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "DocumentRecord"
    assert schema["additionalProperties"] is False


def test_bench_prints_rules_numbers():
    result = runner.invoke(app, ["bench", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["items"] == 470 and data["structure_seconds_median"] > 0  # 468 before one-figure review paragraphs became items


def test_files_whose_records_would_share_a_name_are_refused(tmp_path):
    """a/report.txt, b/report.txt and report.md all give doc_id ``report``: the first is
    written, the other two fail with one line each naming the file that has the id, exit 1."""
    text = (SEEDS / "001_0bd5adcbd4f51cd8.txt").read_text(encoding="utf-8")
    src = tmp_path / "in"
    for rel in ("a/report.txt", "b/report.txt", "report.md"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "llmstruct.app.cli", "structure", str(src / "a" / "report.txt"),
                           str(src / "b" / "report.txt"), str(src / "report.md"), "--out", str(out), "--rules-only"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("already given to" in e and "a/report.txt" in e for e in errors), proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["source_file"] == "report.txt"


def test_serving_beyond_loopback_without_a_login_is_refused(tmp_path):
    """Before any model or corpus is loaded: one line, exit 64; app.py says the same."""
    env = {**os.environ, "LLMSTRUCT_DATA_DIR": str(tmp_path / "data")}
    env.pop("LLMSTRUCT_AUTH", None)
    proc = subprocess.run([sys.executable, "-m", "llmstruct.app.cli", "serve", "--host", "0.0.0.0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 64 and "refusing to serve on 0.0.0.0 without a login" in proc.stderr, proc.stderr
    app_py = subprocess.run([sys.executable, str(ROOT / "app.py")], env={**env, "LLMSTRUCT_HOST": "192.168.1.5"},
                            capture_output=True, text=True, timeout=60)
    assert app_py.returncode == 1 and "LLMSTRUCT_OPEN_BIND=1" in app_py.stderr, app_py.stderr
    assert not (tmp_path / "data").exists()


def test_loopback_addresses():
    from llmstruct.app.webapp import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "example.org", ""]))
