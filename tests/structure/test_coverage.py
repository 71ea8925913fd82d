"""Coverage: the share of a report's figures and text that lie inside its items."""

from __future__ import annotations

from helpers import MINI, SEEDS

from llmstruct.structure.coverage import MIN_FIGURE_COVERAGE, figure_share, text_share
from llmstruct.structure.pipeline import structure_file


def test_every_seed_report_has_its_figures_inside_items():
    for f in sorted(SEEDS.iterdir()):
        for rec in structure_file(f).records:
            assert rec.coverage is not None and rec.coverage.figures > 0
            assert figure_share(rec.coverage) >= 0.95, (rec.doc_id, rec.coverage)
            assert 0.5 < text_share(rec.coverage) <= 1.0
            assert not any("figures lie inside" in w for w in rec.warnings)


def test_figures_outside_every_item_are_counted_and_warned(tmp_path):
    preamble = "".join(f"去年全县完成投资{k}亿元，新增就业{k}00人。" for k in range(1, 30))
    f = tmp_path / "mostly_preamble.txt"
    f.write_text(MINI.replace("现将有关情况通报如下。", preamble + "现将有关情况通报如下。"), encoding="utf-8")
    rec = structure_file(f).records[0]
    assert len(rec.items) == 3 and rec.coverage.figures > 58
    assert figure_share(rec.coverage) < MIN_FIGURE_COVERAGE
    assert any("figures lie inside task items" in w for w in rec.warnings)
