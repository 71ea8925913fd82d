"""Progress judged against the target by code: each basis, unit conversion, name variants,
decisive words winning, and no judgement without a period or a comparable target."""

from __future__ import annotations

from llmstruct.structure.assessment import same_indicator
from llmstruct.structure.pipeline import structure_file

HEAD = "某县人民政府办公室 关于2023年重点工作任务进展情况的通报\n\n2023年重点工作任务进展情况\n\n"


def _items(tmp_path, *tasks: tuple[str, str]):
    body = "".join(f"{k}. {task}（责任单位：县发改局）\n\n进展情况：{progress}\n\n"
                   for k, (task, progress) in enumerate(tasks, start=1))
    f = tmp_path / "bulletin.txt"
    f.write_text(HEAD + body, encoding="utf-8")
    source = f.read_text(encoding="utf-8")
    return structure_file(f).records[0].items, source


def test_a_fall_against_a_growth_target_is_behind(tmp_path):
    (it,), source = _items(tmp_path, ("全年固定资产投资增长5%左右。", "1-8月，全县固定资产投资同比下降4.7%，正在加快推进。"))
    p = it.progress[0]
    assert p.status == "behind" and it.status == "behind"
    a = p.assessment
    assert a.basis == "growth_rate" and a.actual_value == -4.7 and a.target_value == 5
    assert source[a.actual.start:a.actual.end] == a.actual.text and "下降" in a.actual.text
    assert source[a.target.start:a.target.end] == a.target.text and "5%" in a.target.text
    assert "未达到" in a.explanation


def test_a_stated_share_is_compared_with_the_time_elapsed(tmp_path):
    (ahead, short), source = _items(
        tmp_path,
        ("一般公共预算收入增长7%。", "上半年，实现一般公共预算收入10.1亿元，完成全年目标的57.9%。"),
        ("城镇新增就业5000人。", "1-9月，城镇新增就业2900人，完成年度任务的58%。"))
    a = ahead.progress[0].assessment
    assert ahead.progress[0].status == "on_track" and a.basis == "stated_share" and a.elapsed == 0.5
    assert a.period.text == "上半年" and source[a.period.start:a.period.end] == "上半年"
    b = short.progress[0].assessment
    assert short.progress[0].status == "behind" and b.elapsed == 0.75 and "低于序时进度75%" in b.explanation


def test_an_amount_in_other_units_against_the_time_share(tmp_path):
    (it,), _ = _items(tmp_path, ("年内新增本外币贷款32亿元。", "截至5月末，新增本外币贷款120000万元。"))
    a = it.progress[0].assessment
    assert a.basis == "time_share" and it.progress[0].status == "behind"  # 12亿 of 32亿 by May: 37.5% < 41.7%
    assert abs(a.elapsed - 5 / 12) < 1e-3 and "37.5%" in a.explanation


def test_a_decisive_word_wins_and_no_period_means_no_judgement(tmp_path):
    (done, unclear), _ = _items(
        tmp_path,
        ("盘活土地2000亩以上。", "上半年累计盘活土地300亩，已全部完成年度谈判任务。"),
        ("盘活土地2000亩以上。", "累计盘活土地300亩。"))
    assert done.progress[0].status == "completed"
    assert unclear.progress[0].assessment is None and unclear.progress[0].status == "in_progress"


def test_indicator_name_variants():
    assert same_indicator("规模以上工业增加值", "全县规上工业增加值")
    assert same_indicator("地区生产总值", "全县地区生产总值")
    assert not same_indicator("收入", "规上服务业营业收入")
    assert not same_indicator("固定资产投资", "社会消费品零售总额")
