"""Quote alignment (exact / normalized / fuzzy, by characters) and rule-read figures."""

from __future__ import annotations

import pytest
from helpers import SEEDS

from llmstruct.structure.figures import find_figures, rule_name
from llmstruct.structure.pipeline import structure_file
from llmstruct.text.grounding import align


@pytest.fixture(scope="module")
def bulletin():
    return structure_file(SEEDS / "000_5c1aadecc78db95a.txt")


def _range(result, text_field):
    nt = result.clean
    sp = text_field.spans[0]
    return nt.locate(sp.start), nt.locate(sp.end)


def test_alignment_levels(bulletin):
    nt = bulletin.clean
    a, b = _range(bulletin, bulletin.records[0].items[0].progress[0].text)
    exact = align("预计上半年可实现地区生产总值 106 亿元", nt, a, b)
    assert exact.alignment == "exact"
    spaced = align("预计上半年可实现地区生产总值106亿元", nt, a, b)
    assert spaced.alignment == "normalized" and spaced.span.text == "预计上半年可实现地区生产总值 106 亿元"
    fuzzy = align("预计上半年可以实现地区生产总值106亿元", nt, a, b)
    assert fuzzy.alignment == "fuzzy" and fuzzy.ratio >= 0.85
    assert align("县里计划新建三座体育馆", nt, a, b) is None
    for hit in (exact, spaced, fuzzy):
        assert nt.original[hit.span.start:hit.span.end] == hit.span.text


def test_alignment_across_page_break_and_traditional():
    result = structure_file(SEEDS / "002_64fd41ca82a7d87d.txt")
    nt = result.clean
    item = result.records[0].items[1]
    a, b = _range(result, item.task)
    hit = align("新增规模以上工业企业39家", nt, a, b)
    assert hit.alignment == "normalized"
    assert hit.span.text.startswith("新增規(guī)模")
    assert nt.original[hit.span.start:hit.span.end] == hit.span.text


def test_figures_read_units_qualifiers_and_changes(bulletin):
    nt = bulletin.clean
    item = bulletin.records[0].items[0]
    a, b = _range(bulletin, item.task)
    figs = find_figures(nt, a, b)
    assert [(f.value, f.unit, f.qualifier, f.change) for f in figs] == [(7.0, "%", "approx", "up"),
                                                                       (6.0, "%", "approx", "up")]
    assert [rule_name(nt, f, a) for f in figs] == ["地区生产总值", "固定资产投资"]
    pa, pb = _range(bulletin, item.progress[0].text)
    gdp = find_figures(nt, pa, pb)[0]
    assert (gdp.value, gdp.unit, gdp.base_value, gdp.base_unit) == (106.0, "亿元", 106e8, "元")
    for f in find_figures(nt, pa, pb):
        span = nt.span(f.start, f.end)
        assert nt.original[span.start:span.end] == span.text


def test_ordinals_and_ranges_are_not_figures(bulletin):
    nt = bulletin.clean
    item = bulletin.records[0].items[2]
    a, b = _range(bulletin, item.progress[0].text)
    units = [f.unit for f in find_figures(nt, a, b)]
    assert "位" not in units
    assert all(not f.evidence(nt).startswith(("1-", "第")) for f in find_figures(nt, a, b))
