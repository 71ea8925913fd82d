"""An installed wheel works without the checkout: built from the repo, installed into a new
venv outside it, it prints the schema, structures a seed (rules only) and finds its prompts
and vocabulary as package data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_wheel_installed_in_a_fresh_venv_runs_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], cwd=tmp_path)
    wheel = next(dist.glob("llmstruct-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    seed = shutil.copy(ROOT / "seeds" / "000_5c1aadecc78db95a.txt", work / "report.txt")
    cli = str(venv / "bin" / "llmstruct")

    where = _run([str(py), "-c", "import llmstruct; print(llmstruct.__file__)"], cwd=work).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout

    schema = json.loads(_run([cli, "schema"], cwd=work).stdout)
    assert schema["title"] == "DocumentRecord"

    _run([cli, "structure", str(seed), "--rules-only", "--out", "out"], cwd=work)
    record = json.loads((work / "out" / "report.json").read_text(encoding="utf-8"))
    assert len(record["items"]) == 69
    text = Path(seed).read_text(encoding="utf-8")
    first = record["items"][0]["task"]["spans"][0]
    assert text[first["start"]:first["end"]] == first["text"]

    names = _run([str(py), "-c", "from importlib import resources; "
                  "print(' '.join(sorted(p.name for p in (resources.files('llmstruct') / 'prompts').iterdir())))"],
                 cwd=work).stdout.split()
    assert {f.name for f in (ROOT / "llmstruct" / "prompts").glob("*.txt")} <= set(names)
    _run([str(py), "-c", "from llmstruct.text.prompts import load_template; from llmstruct.vocab import VOCAB; "
          "[load_template(n) for n in ('label_item.v2', 'answer_question.v2', 'plan_question.v1')]; "
          "assert VOCAB.refusal_answer"], cwd=work)
