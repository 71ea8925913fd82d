"""Layouts of task splits and progress reports beyond the seeds (evals/corpus shows them):
units on lines of their own, section leaders, （一） targets with 责任单位 lines, tables
flattened one cell per line, and half-year reports whose figures are actuals. Each snippet
is in the printed form of such documents, with made-up places and names."""

from __future__ import annotations

from llmstruct.structure.pipeline import structure_file


def _record(tmp_path, text: str, name: str = "doc.txt"):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    result = structure_file(f)
    source = f.read_text(encoding="utf-8")
    for item in result.records[0].items:  # every span still points at its text
        for span in item.task.spans + [s for u in item.units for s in u.spans] + [x.span for x in item.leaders]:
            assert source[span.start:span.end] == span.text
    return result.records[0]


def _units(item):
    return [(u.name, u.role) for u in item.units]


SPLIT = """某县人民政府关于印发某县政府2024年重点工作任务分解方案的通知

一、经济社会发展的主要预期目标

1.地区生产总值增长6%左右。

牵头单位:县发改局

责任单位:经济开发区,各乡镇、

县直各部门

2.一般公共预算收入增长5%左右。

牵头单位:县财政局

责任单位:各乡镇,各相关单位

配合单位:县税务局

二、重点工作

牵头领导:张明、李华

3.推进老旧小区改造。

责任部门:县住建局

4.建设城区污水管网20公里。(责任领导:王强;牵头单位:县水利局)
"""


def test_unit_lines_after_a_task_are_its_units_with_roles(tmp_path):
    rec = _record(tmp_path, SPLIT)
    one, two, three, four = rec.items
    assert one.task.text == "地区生产总值增长6%左右。"  # the unit lines are not task text
    assert _units(one) == [("县发改局", "lead"), ("经济开发区", "responsible"), ("各乡镇", "responsible"),
                           ("县直各部门", "responsible")]  # a list wrapped onto the next line
    # 各相关单位 names no body; 配合单位 and 责任部门 lines give their roles
    assert _units(two) == [("县财政局", "lead"), ("各乡镇", "responsible"), ("县税务局", "cooperating")]
    assert _units(three) == [("县住建局", "responsible")]
    assert [x.kind for x in (one, two)] == ["target", "target"] and three.kind == "task"
    assert one.targets[0].value == 6 and one.targets[0].kind == "target"


def test_a_section_leader_line_applies_to_the_items_under_it(tmp_path):
    rec = _record(tmp_path, SPLIT)
    one, _, three, four = rec.items
    assert one.leaders == []
    assert [x.name for x in three.leaders] == ["张明", "李华"]
    assert [x.name for x in four.leaders] == ["王强"]  # the item's own 责任领导 wins
    assert _units(four) == [("县水利局", "lead")]


def test_a_clause_continued_on_the_next_line_stays_the_tasks_clause(tmp_path):
    """``责任单位：…）`` closing a bracket the task line opened is not a unit line of its own."""
    text = ("某县2024年重点工作任务进展情况的通报\n\n一、产业发展\n\n"
            "1. 建设开发区综合服务中心，完善基础设施。（责任领导：赵一、钱二；\n\n"
            "责任单位：县开发区管委会；配合单位：某镇政府、某乡政府）\n\n进展情况：主体工程正在施工。\n\n"
            "2. 推进园区道路建设。（责任单位：县交通局）\n\n3. 推进园区绿化。（责任单位：县林业局）\n")
    one = _record(tmp_path, text).items[0]
    assert [x.name for x in one.leaders] == ["赵一", "钱二"]
    assert _units(one) == [("县开发区管委会", "responsible"), ("某镇政府", "cooperating"), ("某乡政府", "cooperating")]


PAREN = """某区人民政府办公室关于印发2024年区《政府工作报告》主要目标任务责任分解方案的通知

一、各责任单位要高度重视,对照目标任务制订工作方案,明确责任,明确措施,明确时间节点,狠抓落实,并按时将工作方案报区人民政府办公室。

某区人民政府办公室

2024年1月5日

2024年区《政府工作报告》主要目标任务责任分解方案

一、2024年全区经济社会发展的主要预期目标

(一)地区生产总值增长6.5%以上

责任单位:区发展和改革局

(二)城镇新增就业1.2万人

责任单位:区人力资源和社会保障局、区

二、重点任务

(一)推进城市更新。(牵头单位:区住建局;责任单位:各街道〈含开发区、风景区〉
"""


def test_numbered_target_lines_with_unit_lines_are_items(tmp_path):
    rec = _record(tmp_path, PAREN)
    assert rec.doc_type == "task_list"
    gdp, jobs, renewal = rec.items
    assert [i.seq_no for i in rec.items] == [1, 2, 1]  # （一） counts again in each 一、 section
    assert len({i.item_id for i in rec.items}) == 3
    assert gdp.task.text == "地区生产总值增长6.5%以上" and gdp.kind == "target"
    assert gdp.section_path == ["一、2024年全区经济社会发展的主要预期目标"]
    assert _units(gdp) == [("区发展和改革局", "responsible")]
    assert gdp.targets[0].value == 6.5 and gdp.targets[0].qualifier == "at_least"
    assert _units(jobs) == [("区人力资源和社会保障局", "responsible")]  # a cut-off "区" is no unit
    assert renewal.kind == "task" and renewal.task.text == "推进城市更新。"
    # a clause the page cuts off before it closes; the inclusion note is not a name
    assert _units(renewal) == [("区住建局", "lead"), ("各街道", "responsible")]


CELLS = """某区人民政府关于分解落实2024年区政府工作目标任务的通知

附件

2024年区政府工作目标任务落实责任分解表

序号

目  标  任  务

牵头单位

责任单位

责任人

一、主要经济社会发展指标、发改、财政等工作目标(牵头领导:周一、吴二)

1

★地区生产总值增长8%。

区发改局

各乡镇

2

★一般公共预算收入增长6%。

区财政局

二、重点工作(牵头领导:郑三)

3

新建5G基站100座。

区经信局

区住建局、相关乡镇

陈四
"""


def test_a_table_flattened_one_cell_per_line(tmp_path):
    rec = _record(tmp_path, CELLS)
    one, two, three = rec.items
    assert [i.seq_no for i in rec.items] == [1, 2, 3]
    assert one.task.text == "★地区生产总值增长8%。" and one.kind == "target" and three.kind == "task"
    assert one.section_path[0].startswith("一、主要经济社会发展指标")
    assert _units(one) == [("区发改局", "lead"), ("各乡镇", "responsible")]
    assert _units(two) == [("区财政局", "lead")]  # its empty cells are simply absent
    assert _units(three) == [("区经信局", "lead"), ("区住建局", "responsible")]
    assert [x.name for x in one.leaders] == ["周一", "吴二"] and [x.name for x in three.leaders] == ["郑三"]


def test_cells_skip_a_column_that_cannot_hold_them(tmp_path):
    """``|`` separators kept, an empty 全年目标 cell dropped: the leader's name goes to 分管领导."""
    text = ("2024年区政府民生实事项目推进情况(1-10月)\n序号 |\n主要任务 |\n全年目标任务 |\n分管 领导 |\n牵头 单位 |\n"
            "责任主体与协同单位 |\n1-9月推进情况 |\n1-10月推进情况 |\n是否达序 |\n说明 |\n"
            "7 |\n改造提升农贸市场3个。 |\n孙五 |\n商务局 |\n市场监管局、各街道 |\n已完成设计,完成40%。 |\n"
            "已进场施工,完成70%。 |\n是 |\n||\n")
    (item,) = _record(tmp_path, text).items
    assert item.seq_no == 7 and item.task.text == "改造提升农贸市场3个。"
    assert [x.name for x in item.leaders] == ["孙五"]
    assert _units(item) == [("商务局", "lead"), ("市场监管局", "responsible"), ("各街道", "responsible")]
    assert [p.text.text for p in item.progress] == ["已完成设计，完成40%。", "已进场施工，完成70%。"]
    assert item.section_path == []  # the document's own title is not a section


HALF_YEAR = """某县人民政府关于某县2024年上半年国民经济和社会发展计划执行情况的报告

一、2024年上半年计划执行情况

(一)主要目标完成情况

2024年上半年,全县实现地区生产总值120亿元,同比增长5.1%,低于目标0.9个百分点;一般公共预算收入完成8.2亿元,同比增长3.3%。

二、下半年工作安排

下半年,全县将紧盯全年目标任务,力争固定资产投资增长10%,确保全年地区生产总值增长6%,一般公共预算收入增长5%,全力以赴完成全年各项目标任务。
"""


def test_half_year_figures_are_actuals_not_targets(tmp_path):
    rec = _record(tmp_path, HALF_YEAR)
    first = rec.items[0]
    assert first.kind != "task"
    assert {t.value: t.kind for t in first.targets} == {120: "actual", 5.1: "actual", 0.9: "actual", 8.2: "actual",
                                                         3.3: "actual"}
    assert [d.text for d in first.deadlines] == []  # 上半年 is the period reported on, not a deadline
    plan = [t for i in rec.items[1:] for t in i.targets]
    assert plan and {t.kind for t in plan} == {"target"}


def test_figures_of_a_progress_report_without_sections_are_actuals(tmp_path):
    """No heading to go by: the report's opening lines say it reports on the half-year."""
    text = ("某县召开半年工作会议\n发布时间:2024-07-20\n关于上半年工作完成情况\n"
            "经济增速:地区生产总值完成53.1亿元、增长4.8%,规模以上工业增加值增长9.5%,社会消费品零售总额完成20.2亿元。\n"
            "——产业升级成效显著。规上高新技术产业增加值增长21.5%,48家企业受益。\n"
            "——下一步工作。力争全年规模以上工业增加值增长10%以上。\n")
    rec = _record(tmp_path, text)
    kinds = {t.value: t.kind for i in rec.items for t in i.targets}
    assert kinds[53.1] == kinds[4.8] == kinds[21.5] == kinds[48] == "actual"
    assert kinds[10] == "target"


def test_a_work_reports_plan_figures_stay_targets(tmp_path):
    """The rule reads the report's opening lines: a plan report is no progress report."""
    text = ("2024年某县政府工作报告\n——2024年1月10日在某县第十八届人民代表大会第三次会议上\n\n"
            "2024年工作安排\n\n"
            "全力稳定工业增长。今年全县规模以上工业增加值增长8%,上半年完成技改项目20个。\n")
    (item,) = _record(tmp_path, text).items
    assert {t.kind for t in item.targets} == {"target"}
    assert [d.text for d in item.deadlines] == ["上半年"]
