"""Arithmetic answered by code from cited figures of the seeds' records: each result with its
formula, every input cited at its exact span, missing inputs named, no model; every computed
number is recorded as a computation that checks against the quotes."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from helpers import seed_text

from llmstruct.answer.arithmetic import arithmetic_answer
from llmstruct.answer.asker import Asker
from llmstruct.answer.computation import check_computations, exact
from llmstruct.answer.planning import rule_plan
from llmstruct.answer.terms import numbers_in
from llmstruct.schema import Answer, Computation

LINSHU, YICHENG, TANCHENG = "000_5c1aadecc78db95a", "003_2daf1169395244c2", "002_64fd41ca82a7d87d"


def ask(catalog, q):
    return arithmetic_answer(q, rule_plan(q, catalog=catalog), catalog)


def assert_grounded(catalog, q, a):
    """Every citation is the source text at its span, from a document the question names, its
    computations check (formula in the answer, operands in the quotes cited, result recomputed),
    and every number of the answer is quoted, in the question or a document's name, or an
    operand or result of a computation: a computed number appears only where code derived it."""
    assert a is not None and not a.refused and a.citations
    named = set(rule_plan(q, catalog=catalog).doc_ids)
    for c in a.citations:
        assert seed_text(c.source_file)[c.start:c.end] == c.quote
        assert c.doc_id in named
    assert check_computations(a) == []
    assert all(c.formula in a.answer for c in a.computations)
    allowed = set(numbers_in(q)) | {n for c in a.citations for n in numbers_in(c.quote)}
    allowed |= {n for d in catalog.docs.values() for n in numbers_in(d.label)}
    computed = {abs(exact(x)) for c in a.computations for x in (*c.operands, c.result)}
    text = re.sub(r"\[\d+\]", "", a.answer)
    for n in numbers_in(text):
        assert n in allowed or Decimal(n) in computed, (n, a.answer)
    if " = " in text:
        assert a.computations  # a formula written is a formula recorded


def test_gap_to_target_is_target_minus_actual_of_one_item(catalog):
    q = "临沭县上半年城镇新增就业距离全年目标还差多少人？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "还差 = 5500 − 3064 = 2436人" in a.answer and "至少" in a.answer  # 5500人以上
    assert [c.quote for c in a.citations] == ["年内新增城镇就业 5500 人以上", "城镇新增就业 3064 人"]
    assert "临沭县2021年" in a.answer  # the document the inputs come from
    assert a.computations == [Computation(op="difference", inputs=[1, 2], operands=[5500, 3064], result=2436,
                                          unit="人", formula="5500 − 3064 = 2436人")]


def test_a_stock_does_not_answer_an_increment_target(catalog):
    """新增贷款32亿元 is met by 较年初增加21.75亿元, not by the 余额 329.24亿元."""
    q = "临沭县截至5月末本外币贷款较年初增加了多少？距离年内新增32亿元的目标还差多少？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "还差 = 32 − 21.75 = 10.25亿元" in a.answer and "329.24" not in a.answer


def test_completion_share_and_a_target_exceeded(catalog):
    q = "临沭县上半年盘活土地完成了年度目标的百分之多少？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "完成比例 = 1090.2 ÷ 2000 = 54.5%" in a.answer
    (c,) = a.computations
    assert (c.op, c.inputs, c.operands, c.result, c.unit) == ("share", [2, 1], [1090.2, 2000], 54.5, "%")  # part, whole
    q = "峄城区新招引过亿元项目的目标是20个以上，1-9月实际引进了多少个，超出目标几个？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "超出 = 24 − 20 = 4个" in a.answer


def test_rate_against_rate_target_is_in_percentage_points(catalog):
    q = "峄城区固定资产投资增速离目标还差多少？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "还差 = 5 − (-4.7) = 9.7个百分点" in a.answer  # 同比下降4.7% against 增长5%左右
    assert [(c.operands, c.unit) for c in a.computations] == [([5, -4.7], "个百分点")]


def test_difference_of_two_named_indicators_of_one_document(catalog):
    q = "郯城县2022年城镇居民与农村居民人均可支配收入相差多少元？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "相差 = 44020 − 18886 = 25134元" in a.answer
    assert {c.doc_id for c in a.citations} == {TANCHENG}


def test_sum_of_named_parts(catalog):
    q = "临沭县盘活的低效土地和闲置土地合计多少亩？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "合计 = 435 + 655.2 = 1090.2亩" in a.answer


def test_change_from_one_figure_to_a_later_one(catalog):
    q = "兰山区地区生产总值增加了多少？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "增加 = 1187.9 − 849 = 338.9亿元" in a.answer


def test_places_compared_with_units_converted_and_each_document_named(catalog):
    q = "临沭县和峄城区2021年一般公共预算收入相差多少？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "相差 = 101000 − 91189 = 9811万元" in a.answer and "10.1亿元 = 101000万元" in a.answer
    assert {c.doc_id for c in a.citations} == {LINSHU, YICHENG}
    assert "临沭县2021年" in a.answer and "峄城区2021年" in a.answer
    assert "11530" not in a.answer  # 坛山街道's own line is not the district's figure
    assert {(c.op, tuple(c.inputs), tuple(c.operands), c.result, c.formula) for c in a.computations} == {
        ("difference", (1, 2), (101000, 91189), 9811, "101000 − 91189 = 9811万元"),
        ("conversion", (1,), (10.1,), 101000, "10.1亿元 = 101000万元")}  # 101000 is 10.1 of quote [1], converted


def test_ranking_across_places_names_the_place_without_the_figure(catalog):
    q = "青岛市、历城区、金乡县、兰山区、冠县2021年的生产总值增长目标各是多少？哪个最高？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "青岛市、历城区最高（8%）" in a.answer
    assert "青岛市 8 = 历城区 8 > 金乡县 7 > 冠县 6.5" in a.answer
    # 兰山区's 2021 targets are in no item; its 年均增长6% is the five-year plan's, not the year's
    assert "未找到：兰山区2021年" in a.answer and "6%" not in a.answer.replace("6.5%", "")


def test_ranking_within_a_document_by_reporting_unit(catalog):
    q = "峄城区哪个镇街的一般公共预算收入最高？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "阴平镇最高（13100万元）" in a.answer and "1.31亿元 = 13100万元" in a.answer
    assert "阴平镇 13100 > 坛山街道 11530 > 榴园镇 2978 > 古邵镇 2887 > 底阁镇 2009" in a.answer
    assert "区财政局" not in a.answer and "91189" not in a.answer  # the district's total is no town
    rank = next(c for c in a.computations if c.op == "rank")
    assert rank.result == 13100 and rank.operands == [13100, 11530, 2978, 2887, 2009]
    assert "1.31" in a.citations[rank.inputs[0] - 1].quote and "11530" in a.citations[rank.inputs[1] - 1].quote
    assert rank.formula == "阴平镇 13100 > 坛山街道 11530 > 榴园镇 2978 > 古邵镇 2887 > 底阁镇 2009"


def test_two_documents_of_different_years_are_flagged(catalog):
    q = "姜屯镇2019年的生产总值和兰陵镇2018年的国内生产总值哪个更高？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "相差 = 48.68 − 48.61 = 0.07亿元，兰陵镇较高" in a.answer and "年份不同" in a.answer


@pytest.mark.parametrize("q, gap", [
    ("郯城县城镇新增就业还差多少？", "城镇新增就业的完成数"),  # 2023 target; 8021人 is 2022's, another item
    ("临沭县新增高新技术企业还差多少家？", "高新技术企业的完成数"),
    ("峄城区税收收入还差多少？", "税收收入的目标"),
])
def test_a_missing_input_is_named_not_guessed(catalog, q, gap):
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert "未找到：" in a.answer and gap in a.answer
    assert " = " not in a.answer and a.computations == []  # nothing computed
    assert "8021" not in a.answer and "3064" not in a.answer and "5500" not in a.answer


def test_another_period_or_another_place_is_never_an_input(catalog):
    """上半年 asked: 峄城区's figures are of 1-9月, and its towns' lines are not its own; the
    answer names the gap instead of comparing unlike figures."""
    q = "临沭县和峄城区2021年上半年一般公共预算收入相差多少？"
    a = ask(catalog, q)
    assert_grounded(catalog, q, a)
    assert {c.doc_id for c in a.citations} == {LINSHU}
    assert "未找到：峄城区2021年" in a.answer and "上半年一般公共预算收入" in a.answer and "相差 =" not in a.answer


@pytest.mark.parametrize("q", [
    "临沭县2021年上半年一般公共预算收入是多少？",  # no arithmetic asked
    "临沭县一般公共预算收入目标的第一责任单位是谁？上半年完成了全年目标的多少？",  # also asks who
    "临沭县一般公共预算收入完成了全年目标的百分之多少？",  # a growth-rate target: the text states 57.9%
    "临沭县一季度居民人均可支配收入增速比全市低多少？",  # 全市 is no figure of the records
    "临沭县一共有几项任务？",
])
def test_questions_the_path_leaves_to_the_others(catalog, q):
    assert ask(catalog, q) is None


def test_the_asker_answers_arithmetic_without_a_model(catalog):
    a = Asker(catalog, None).ask("临沭县引进高端人才完成了几成？")
    assert not a.refused and "完成比例 = 34 ÷ 80 = 42.5%" in a.answer and len(a.citations) == 2
    assert check_computations(a) == [] and [c.result for c in a.computations] == [42.5]


def test_an_answer_without_computations_still_reads():
    """Other answer paths and JSON written before computations were recorded stay valid."""
    a = Answer.model_validate({"question": "q", "answer": "a", "refused": False})
    assert a.computations == [] and check_computations(a) == []
    with pytest.raises(ValueError):
        Computation(op="product", inputs=[1], operands=[1], result=1, unit="", formula="")
