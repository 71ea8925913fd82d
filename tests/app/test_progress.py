"""The 进度 view's rows from the seeds: tasks behind and on track, each with a basis whose
spans are exact slices of the source, filterable, exported formula-safe."""

from __future__ import annotations

import csv

import pytest
from helpers import SEEDS

from llmstruct.answer.catalog import load_catalog
from llmstruct.app.progress import basis_html, export_rows, progress_rows, rows_html
from llmstruct.app.webapp import STATUS_ZH


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(sorted(SEEDS.iterdir()))


def test_rows_list_behind_first_with_exact_basis_spans(catalog):
    rows = progress_rows(catalog)
    assert rows and {r.status for r in rows} == {"behind", "on_track"}
    assert [r.status for r in rows] == sorted((r.status for r in rows), key=["behind", "on_track"].index)
    for r in rows:
        text = catalog.texts[r.doc_id]
        assert r.spans and all(text[s.start:s.end] == s.text for s in r.spans), r
        assert r.basis
    fai = [r for r in rows if r.reporting_unit == "区发改局" and r.doc_id.startswith("003")]
    assert fai and fai[0].status == "behind" and "固定资产投资" in fai[0].basis and "-4.7%" in fai[0].basis


def test_filters_by_document_unit_and_status(catalog):
    doc = next(d for d in catalog.records if d.startswith("000"))
    only = progress_rows(catalog, doc_id=doc, statuses=("on_track",))
    assert only and all(r.doc_id == doc and r.status == "on_track" for r in only)
    unit = progress_rows(catalog, unit="县财政局")
    assert unit and all("县财政局" in r.units for r in unit)
    assert progress_rows(catalog, leader="没有这个人") == []


def test_table_basis_and_exports(catalog, tmp_path):
    rows = progress_rows(catalog)
    table = rows_html(rows, STATUS_ZH)
    assert "滞后" in table and "符合进度" in table and "<script" not in table
    page = basis_html(rows[0], catalog)
    assert page.count("<mark>") == len({(s.start, s.end) for s in rows[0].spans})
    csv_path, xlsx_path = export_rows(rows, tmp_path, STATUS_ZH)
    with open(csv_path, encoding="utf-8-sig") as fh:
        table_rows = list(csv.reader(fh))
    assert table_rows[0][-1] == "依据" and len(table_rows) == len(rows) + 1
    from openpyxl import load_workbook

    assert load_workbook(xlsx_path).active.max_row == len(rows) + 1
