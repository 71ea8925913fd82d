"""The house rules, checked: layered imports (import-linter contract in pyproject.toml), no
module too long to read in one sitting, the vocabulary in step with the schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

from helpers import ROOT

from llmstruct import schema
from llmstruct.text.tokens import tokenize
from llmstruct.vocab import VOCAB

MAX_LINES = 700


def test_imports_follow_the_layer_contract() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is not installed (dev extra)"
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_no_undefined_or_unused_names() -> None:
    """pyflakes' checks (ruff F): an import lost in a move fails here, not in a slow test."""
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert exe, "ruff is not installed (dev extra)"
    proc = subprocess.run([exe, "check", "--select", "F,E9", "--no-cache", "llmstruct", "tests", "app.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_no_module_is_over_700_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "llmstruct").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_vocabulary_covers_the_schema_and_its_aliases_are_unambiguous() -> None:
    assert tuple(VOCAB.raw["statuses"]) == get_args(schema.Status)
    assert tuple(VOCAB.raw["roles"]) == get_args(schema.UnitRole)
    assert set(VOCAB.refusal_messages) == set(get_args(schema.RefusalCode))
    for key in ("statuses", "roles"):
        aliases = [a for e in VOCAB.raw[key].values() for a in e.get("filter_aliases", [])]
        assert len(aliases) == len(set(aliases)), key


def test_building_a_catalog_leaves_the_index_tokenizer_alone() -> None:
    """A catalog's names go into its own tokenizer, so index and query tokens stay alike."""
    from llmstruct.answer import load_catalog

    text = "临沭县统计局配合刘洪明推进任务"
    before = tokenize(text)
    catalog = load_catalog([ROOT / "seeds" / "000_5c1aadecc78db95a.txt"])
    assert tokenize(text) == before
    assert "临沭县统计局" in list(catalog.tokenizer.cut(text)) or "刘洪明" in list(catalog.tokenizer.cut(text))


def test_test_folders_mirror_the_packages() -> None:
    """tests/<pkg>/ holds the tests of llmstruct/<pkg>/, tests/test_<mod>.py those of a core
    module llmstruct/<mod>.py: a newcomer finds them by name."""
    packages = {p.name for p in (ROOT / "llmstruct").iterdir() if (p / "__init__.py").is_file()}
    folders = {p.name for p in (ROOT / "tests").iterdir()
               if p.is_dir() and p.name not in {"artifacts", "__pycache__"} and any(p.glob("test_*.py"))}
    assert folders <= packages, f"test folders without a package: {sorted(folders - packages)}"
    modules = {p.stem for p in (ROOT / "llmstruct").glob("*.py")} | {"architecture"}
    top = {p.stem.removeprefix("test_") for p in (ROOT / "tests").glob("test_*.py")}
    assert top <= modules, f"top-level tests without a core module: {sorted(top - modules)}"
