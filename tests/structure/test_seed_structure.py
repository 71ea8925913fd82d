"""Rules-only structuring of the five seed documents: segmentation, grounding, rules."""

from __future__ import annotations

import json

import pytest
from helpers import SEEDS

from llmstruct.ingest.source import read_source
from llmstruct.schema import DocumentRecord
from llmstruct.structure.pipeline import structure_file, write_records

S000 = SEEDS / "000_5c1aadecc78db95a.txt"
S001 = SEEDS / "001_0bd5adcbd4f51cd8.txt"
S002 = SEEDS / "002_64fd41ca82a7d87d.txt"
S003 = SEEDS / "003_2daf1169395244c2.txt"
S004 = SEEDS / "004_9441ed748846e1ff.txt"


@pytest.fixture(scope="module")
def structured():
    return {p.name[:3]: structure_file(p) for p in sorted(SEEDS.glob("*.txt"))}


def items_by_seq(result, k=0):
    return {i.seq_no: i for i in result.records[k].items}


def test_000_items_1_to_69(structured):
    rec = structured["000"].records
    assert len(rec) == 1
    assert [i.seq_no for i in rec[0].items] == list(range(1, 70))
    assert rec[0].doc_type == "progress_report"
    assert all(len(i.progress) == 1 and i.progress[0].text.text for i in rec[0].items)
    first = rec[0].items[0]
    assert first.kind == "target" and first.section_path == ["主要预期目标"]
    assert rec[0].items[3].section_path == ["一、坚定不移推进产业升级，高质量发展实体经济", "（一）全力打造主导产业"]


def test_001_gives_75_items(structured):
    rec = structured["001"].records[0]
    assert [i.seq_no for i in rec.items] == list(range(1, 76))
    assert rec.doc_type == "task_list"
    assert rec.items[0].section_path == ["一、加快推进国家创新型县建设"]
    assert rec.items[-1].section_path == ["十二、切实抓好组织实施"]


def test_003_items_1_to_108_with_unit_blocks(structured):
    rec = structured["003"].records[0]
    assert [i.seq_no for i in rec.items] == list(range(1, 109))
    item1 = rec.items[0]
    assert item1.task.text == "地区生产总值增长6%以上，固定资产投资增长5%左右，城乡居民人均可支配收入增长6%左右。"
    assert [p.reporting_unit.name for p in item1.progress] == [
        "区发改局", "底阁镇", "峨山镇", "吴林街道", "坛山街道", "榴园镇", "阴平镇", "古邵镇"]
    assert item1.progress[1].text.text == "1-9月，固定资产投资2.36亿元，同比下降16.04%。"
    assert [(u.name, u.role) for u in item1.units][:2] == [("区发改局", "responsible"), ("各镇（街）", "responsible")]
    assert all(i.task.text.endswith("。") for i in rec.items), "a task cell lost its tail"


def test_003_wrapped_and_interleaved_cells(structured):
    items = items_by_seq(structured["003"])
    assert [u.name for u in items[4].units if u.role == "responsible"] == ["区国有资产事务中心", "福兴集团"]
    # row 63 was printed on one line with its cells separated by spaces
    assert items[63].task.text.startswith("探索实行城市管理轻微违章“首违不罚”")
    assert [u.name for u in items[63].units] == ["区综合行政执法局", "区市场监管局"]
    assert items[63].progress[0].reporting_unit.name == "区综合行政执法局"
    # row 70's task cell resumes inside the progress column after a page break
    assert items[70].task.text.endswith("推动公共服务向农村延伸，社会事业向农村覆盖。")
    assert len(items[70].task.spans) == 2
    assert items[70].progress[0].text.text == "已完成各个镇街的规划调研情况。完成各个镇街城镇开发边界划定，并形成初稿。"
    assert items[82].task.text.endswith("切实保障人民群众生命健康安全。")
    assert items[77].units[1].name == "石榴产业三年行动计划领导小组成员单位"


def test_004_is_ten_reports(structured):
    recs = structured["004"].records
    assert len(recs) == 10
    assert [r.title.name for r in recs] == [
        "青岛市政府工作报告", "2021年历城区政府工作报告", "2021年金乡县政府工作报告", "2021年兰山区政府工作报告",
        "2021年冠县政府工作报告", "2020年姜屯镇政府工作报告", "2019年垦利区胜坨镇政府工作报告",
        "2019年南站镇政府工作报告", "2019年兰陵镇政府工作报告", "2019年南桥镇政府工作报告"]
    assert [r.doc_id for r in recs] == [f"004_9441ed748846e1ff-{k:02d}" for k in range(1, 11)]
    assert all(r.items for r in recs)
    qd, lc = recs[0], recs[1]
    assert (qd.speaker.name, qd.speaker_title, qd.region.city) == ("赵豪志", "青岛市代市长", "青岛市")
    assert {d.kind: d.value for d in qd.dates}["meeting"] == "2021-01-12"
    assert (lc.speaker.name, lc.region.city, lc.region.county) == ("曹殿军", "济南市", "历城区")
    assert recs[6].region.town == "胜坨镇" and recs[6].region.county == "垦利区"
    assert recs[5].region.town == "姜屯镇" and recs[5].region.county == "滕州市"
    # the site's submission agreement after the last report belongs to no report
    assert "投稿" not in recs[-1].source_range.text


def test_004_ordinals_inside_sentences_are_not_headings(structured):
    jinxiang = structured["004"].records[2]
    assert not any(p.startswith(("一、连续", "四、第三")) for i in jinxiang.items for p in i.section_path)


def test_002_every_topic_paragraph(structured):
    rec = structured["002"].records[0]
    review = [i.heading for i in rec.items if i.kind == "topic" and i.section_path[:1] == ["2022年工作回顾"]]
    assert review == ["经济发展取得新成效", "乡村振兴打开新局面", "城市建设展现新颜值", "发展底板实现新加强",
                      "民生事业再上新水平", "政府建设迈出新步伐"]
    plan = [i for i in rec.items if i.kind == "topic" and i.section_path[:1] == ["2023年工作安排"]]
    assert len(plan) == 21
    assert plan[0].heading == "全力招商引资" and plan[0].section_path[1].startswith("一、坚定不移扩内需")
    gov = [i.heading for i in rec.items if i.section_path == ["加强政府自身建设"]]
    assert gov == ["旗帜鲜明讲政治", "狠抓落实强作风", "依法行政守准绳", "廉洁为民树形象"]
    targets = [i for i in rec.items if i.kind == "target"]
    assert len(targets) == 1 and "生产总值增长6%以上" in targets[0].task.text
    assert (rec.speaker.name, rec.region.county, rec.period) == ("于广威", "郯城县", "2023")
    assert rec.title.name == "2023年临沂市郯城县政府工作报告"


def test_002_pinyin_and_traditional_kept_in_spans(structured):
    rec = structured["002"].records[0]
    topic = rec.items[1]
    assert "(" not in topic.task.text, "pinyin annotation leaked into clean text"
    assert "經(jīng)濟發(fā)展" in topic.task.spans[0].text, "the span must show the original as written"


# Hand-made from the source text: leaders and units exactly as written.
EXPECTED_000 = {
    1: (["朱凤华"], [("县发展和改革局", "responsible"), ("县统计局", "cooperating")]),
    2: (["朱凤华"], [("县财政局", "lead"), ("县税务局", "responsible"), ("县统计局", "cooperating")]),
    5: (["庄金才", "刘洪明"], [("县工业和信息化局", "responsible"), ("县地方金融发展服务中心", "cooperating"),
                               ("县统计局", "cooperating")]),
    7: (["庄金才", "刘洪明"], [("经济开发区管委会", "responsible"), ("滨海高新区管委会", "cooperating"),
                               ("青云镇政府", "cooperating"), ("店头镇政府", "cooperating")]),
    8: (["朱风华"], [("县税务局", "responsible")]),
    13: (["朱凤华", "胡文君"], [("县委编办", "responsible"), ("县人力资源和社会保障局", "responsible")]),
    19: (["胡文君"], [("县人才发展服务中心", "responsible"), ("县人力资源和社会保障局", "responsible")]),
    21: (["陆永春", "任天龙"], [("县文化旅游发展中心", "responsible"), ("县利城文旅集团", "cooperating"),
                               ("曹庄镇政府", "cooperating"), ("郑山街道办事处", "cooperating")]),
    62: (["庄金才"], [("县地方金融发展服务中心", "responsible")]),
    67: (["陆永春"], [("县生态环境分局", "responsible"), ("县自然资源和规划局", "cooperating")]),
}
EXPECTED_001 = {
    1: [("县科技局", "lead"), ("县发展改革局", "cooperating")],
    2: [("县科技局", "responsible")],
    31: [("县自然资源局", "responsible"), ("县水利局", "responsible")],
    51: [("县财政局", "responsible"), ("县工业和信息化局", "responsible"), ("县发展改革局", "responsible"),
         ("县行政审批服务局", "responsible"), ("县市场监管局", "responsible"),
         ("市公共资源交易中心沂源分中心", "responsible")],
    52: [("县商务局", "lead"), ("经济开发区", "lead")],
    59: [("县委宣传部", "lead"), ("县文化和旅游局", "cooperating")],
    66: [("县民政局", "lead"), ("县卫生健康局", "cooperating"), ("县妇联", "cooperating"), ("团县委", "cooperating")],
}


def test_000_leaders_and_units_as_written(structured):
    items = items_by_seq(structured["000"])
    for seq, (leaders, units) in EXPECTED_000.items():
        assert [p.name for p in items[seq].leaders] == leaders, seq
        assert [(u.name, u.role) for u in items[seq].units] == units, seq
    assert items[1].units[0].canonical == "县发展和改革局"


def test_001_units_and_roles_as_written(structured):
    items = items_by_seq(structured["001"])
    for seq, units in EXPECTED_001.items():
        assert [(u.name, u.role) for u in items[seq].units] == units, seq
        assert not items[seq].task.text.endswith("）"), "the unit tail must not stay in the task text"
    assert items[1].units[1].canonical == "县发展和改革局"


def test_metadata_of_notices(structured):
    r000 = structured["000"].records[0]
    assert r000.doc_number.name == "沭政督字〔2021〕22号"
    assert r000.issuing_body.name == "临沭县人民政府办公室"
    assert {d.kind: d.value for d in r000.dates} == {"signed": "2021-07-13"}
    assert (r000.region.province, r000.region.city, r000.region.county) == ("山东省", "临沂市", "临沭县")
    r001 = structured["001"].records[0]
    assert r001.doc_number.name == "源政办字〔2023〕21号"
    assert {d.kind: d.value for d in r001.dates} == {"issued": "2023-07-06", "published": "2023-07-06",
                                                      "signed": "2023-07-05"}
    assert r001.region.city == "淄博市" and r001.period == "2023"


def test_deadlines_are_quoted(structured):
    items = items_by_seq(structured["000"])
    assert [d.text for d in items[49].deadlines] == ["年内"]


def _walk_spans(node):
    if isinstance(node, dict):
        if set(node) == {"start", "end", "text"}:
            yield node
        for v in node.values():
            yield from _walk_spans(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_spans(v)


def test_every_span_in_every_output_is_exact(structured, tmp_path):
    total = 0
    for key, result in structured.items():
        original = read_source(result.source.path).text
        for path in write_records(result.records, tmp_path):
            data = json.loads(path.read_text(encoding="utf-8"))
            DocumentRecord.model_validate(data)
            for span in _walk_spans(data):
                assert original[span["start"]:span["end"]] == span["text"], (key, span)
                total += 1
    assert total > 1500


def test_records_reject_unknown_fields(structured):
    data = structured["001"].records[0].model_dump(mode="json")
    data["surprise"] = 1
    with pytest.raises(ValueError):
        DocumentRecord.model_validate(data)


def test_a_two_task_bulletin_is_still_a_bulletin(tmp_path):
    """Staff upload short bulletins too: two numbered tasks with their assignment clauses
    and 进展情况 are tasks, not work-report paragraphs."""
    path = tmp_path / "bulletin.txt"
    path.write_text(
        "某县2022年重点工作任务进展情况\n\n"
        "1. 2022年实现地区生产总值增长6%左右。（责任领导：张三；责任单位：县发展和改革局；配合单位：县统计局）\n\n"
        "进展情况：上半年实现地区生产总值120亿元，同比增长5.2%，增幅暂时低于全市平均水平。\n\n"
        "2. 新建5G基站100座。（责任领导：李四；责任单位：县工业和信息化局）\n\n"
        "进展情况：已建成5G基站100座，任务已全部完成。\n", encoding="utf-8")
    (rec,) = structure_file(path).records
    assert rec.doc_type == "progress_report" and [i.seq_no for i in rec.items] == [1, 2]
    first, second = rec.items
    assert [(u.name, u.role) for u in first.units] == [("县发展和改革局", "responsible"), ("县统计局", "cooperating")]
    assert [p.status for p in first.progress] == ["behind"] and [p.status for p in second.progress] == ["completed"]
