"""Places for all of China from the national adcode table: the header decides, the codes
give the parents, shared names need a named parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmstruct.structure.pipeline import structure_file
from llmstruct.structure.regions import resolve_region

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


@pytest.mark.parametrize(("header", "want"), [
    ("临沭县人民政府办公室 关于2022年重点工作任务进展情况的通报", ("山东省", "临沂市", "临沭县")),
    ("2026年四川省人民政府工作报告 四川省人民政府省长 施小琳", ("四川省", None, None)),
    ("上海市市长 龚 正", ("上海市", None, None)),
    ("重庆市人民政府", ("重庆市", None, None)),
    ("北京市朝阳区人民政府", ("北京市", None, "朝阳区")),
    ("吉林省长春市朝阳区人民政府", ("吉林省", "长春市", "朝阳区")),
    ("枣庄市市中区人民政府", ("山东省", "枣庄市", "市中区")),
    ("广西壮族自治区人民政府工作报告", ("广西壮族自治区", None, None)),
    ("恩施土家族苗族自治州人民政府", ("湖北省", "恩施土家族苗族自治州", None)),
])
def test_the_header_decides(header, want):
    r = resolve_region(header, "成都市" * 5)  # the body never overrides a place in the header
    assert (r.province, r.city, r.county) == want


def test_a_shared_county_name_without_its_parent_is_not_guessed():
    assert resolve_region("市中区人民政府").county is None


def test_the_body_decides_only_when_the_header_names_no_place():
    r = resolve_region("关于2023年重点工作任务进展情况的通报", "郯城县" * 4 + "临沭县")
    assert (r.province, r.city, r.county) == ("山东省", "临沂市", "郯城县")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not on this machine")
def test_every_province_of_the_development_corpus():
    want = {"01": "上海市", "02": "云南省", "03": "四川省", "04": "广东省", "05": "浙江省", "06": "湖北省",
            "07": "黑龙江省", "08": "河南省", "09": "甘肃省", "10": "北京市"}
    got = {f.stem[-2:]: structure_file(f).records[0].region.province for f in sorted(CORPUS.glob("prov2026_*.txt"))}
    assert got == want
