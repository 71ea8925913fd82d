"""Document ids name files, so they are made safe from any file name and checked on load."""

from __future__ import annotations

import json

import pytest
from helpers import SEEDS
from pydantic import ValidationError

from llmstruct.schema import DocumentRecord
from llmstruct.structure.pipeline import doc_id_for, structure_file, write_records

BULLETIN = (SEEDS / "001_0bd5adcbd4f51cd8.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("stem, expected", [(".", "_"), ("..", "_"), (".hidden", "hidden"), ("a\\b", "a_b"),
                                            ("报告", "报告"), ("000_5c1aadecc78db95a", "000_5c1aadecc78db95a")])
def test_ids_from_file_stems(stem, expected):
    assert doc_id_for(stem) == expected
    assert doc_id_for(stem, 3) == expected + "-03"


@pytest.mark.parametrize("name", ["..txt", "报" * 79 + ".txt"])  # the second is a 240-byte name
def test_odd_file_names_give_records_inside_the_output_folder(tmp_path, name):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_text(BULLETIN, encoding="utf-8")
    out = tmp_path / "out"
    written = write_records(structure_file(src).records, out)
    assert written and all(p.parent == out and not p.name.startswith(".") for p in written)
    assert all(len(p.name.encode()) <= 255 for p in written)


@pytest.mark.parametrize("doc_id", ["../../evil", "/etc/x", ".", "..", ".hidden", "a" * 81])
def test_a_crafted_record_id_is_not_a_valid_record(tmp_path, doc_id):
    rec = structure_file(_write(tmp_path)).records[0].model_dump(mode="json")
    with pytest.raises(ValidationError):
        DocumentRecord.model_validate({**rec, "doc_id": doc_id})


def _write(tmp_path):
    path = tmp_path / "bulletin.txt"
    path.write_text(BULLETIN, encoding="utf-8")
    return path


def test_review_skips_a_crafted_record_and_writes_nothing_outside(tmp_path):
    from llmstruct.app.review import review_dir

    src = _write(tmp_path)
    out = tmp_path / "out"
    rec = structure_file(src).records[0].model_dump(mode="json")
    (out / "x").mkdir(parents=True)
    (out / "crafted.json").write_text(json.dumps({**rec, "doc_id": "../../escaped"}), encoding="utf-8")
    result = review_dir(out, [tmp_path])
    assert any("crafted.json: not a valid DocumentRecord" in f for f in result.failures)
    assert not (tmp_path / "escaped.html").exists() and not list(tmp_path.glob("escaped*"))
