"""Which files a folder contributes: reports, not the folder's own notes or hidden files."""

from __future__ import annotations

import os
from pathlib import Path

from llmstruct.ingest.paths import expand_paths


def test_a_folder_gives_its_reports_not_its_readme_or_sources(tmp_path: Path) -> None:
    for name in ("a.txt", "b.md", "SOURCES.md", "README.md", "readme.txt", "LICENSE.txt", ".hidden.txt", "c.json"):
        (tmp_path / name).write_text("2026年政府工作报告", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.html").write_text("<p>报告</p>", encoding="utf-8")
    assert [p.name for p in expand_paths([tmp_path])] == ["a.txt", "b.md", "d.html"]


def test_a_file_named_directly_is_always_taken(tmp_path: Path) -> None:
    notes = tmp_path / "SOURCES.md"
    notes.write_text("x", encoding="utf-8")
    assert expand_paths([notes]) == [notes]


def _report(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("2026年政府工作报告", encoding="utf-8")
    return path


def test_a_symlink_to_a_file_outside_the_folder_is_skipped(tmp_path: Path) -> None:
    secret = _report(tmp_path / "elsewhere" / "secret.txt")
    folder = tmp_path / "in"
    _report(folder / "a.txt")
    os.symlink(secret, folder / "b.txt")
    assert [p.name for p in expand_paths([folder])] == ["a.txt"]


def test_a_symlink_to_a_file_inside_is_taken_once_under_its_real_name(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    real = _report(folder / "sub" / "real.txt")
    os.symlink(real, folder / "alias.txt")
    assert expand_paths([folder]) == [real]


def test_a_symlinked_folder_leading_outside_is_not_walked(tmp_path: Path) -> None:
    _report(tmp_path / "elsewhere" / "secret.txt")
    folder = tmp_path / "in"
    _report(folder / "a.txt")
    os.symlink(tmp_path / "elsewhere", folder / "linked", target_is_directory=True)
    assert [p.name for p in expand_paths([folder])] == ["a.txt"]


def test_a_symlink_cycle_ends(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _report(folder / "sub" / "a.txt")
    os.symlink(folder, folder / "sub" / "loop", target_is_directory=True)
    os.symlink(folder / "x.txt", folder / "y.txt")
    os.symlink(folder / "y.txt", folder / "x.txt")
    assert [p.name for p in expand_paths([folder])] == ["a.txt"]


def test_a_file_named_directly_is_taken_as_given_even_through_a_symlink(tmp_path: Path) -> None:
    secret = _report(tmp_path / "elsewhere" / "secret.txt")
    link = tmp_path / "in" / "link.txt"
    link.parent.mkdir()
    os.symlink(secret, link)
    assert expand_paths([link]) == [link]


def test_a_file_named_and_found_in_a_named_folder_is_taken_once(tmp_path: Path) -> None:
    a = _report(tmp_path / "a.txt")
    _report(tmp_path / "sub" / "b.txt")
    assert expand_paths([a, tmp_path, tmp_path / "sub"]) == [a, tmp_path / "sub" / "b.txt"]
