"""Which files a folder contributes: reports, not the folder's own notes or hidden files."""

from __future__ import annotations

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
