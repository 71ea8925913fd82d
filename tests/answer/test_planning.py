"""Planning in code: which documents, items, people and parts a question is about."""

from __future__ import annotations

from llmstruct.answer.planning import question_parts, rule_plan

LINSHU = "000_5c1aadecc78db95a"


def test_plan_links_places_items_and_people(catalog):
    p = rule_plan("临沭县第69项“完善工业危废全过程、精细化管理机制”的责任领导和责任单位是谁？", catalog=catalog)
    assert p.doc_ids == [LINSHU] and p.item_no == 69 and p.intent == "lookup"
    c = rule_plan("临沭县通报中刘洪明作为责任领导的任务有几项？", catalog=catalog)
    assert c.intent == "count" and c.leader == "刘洪明"
    u = rule_plan("县统计局在临沭县的通报中作为配合单位参与了哪些任务？", catalog=catalog)
    assert u.intent == "list" and u.unit == "县统计局" and u.roles == ["cooperating"]
    x = rule_plan("临沭县和峄城区2021年的地区生产总值增长目标分别是多少？", catalog=catalog)
    assert x.intent == "compare" and len(x.doc_ids) == 2
    town = rule_plan("兰陵镇2019年计划引进多少个过亿元项目？", catalog=catalog)
    assert town.doc_ids == ["004_9441ed748846e1ff-09"]


def test_follow_up_takes_the_previous_question(catalog):
    prev = "临沭县2021年的地区生产总值增长目标是多少？"
    p = rule_plan("那峄城区呢？", history=[prev], catalog=catalog)
    assert p.standalone == "峄城区2021年的地区生产总值增长目标是多少？"
    assert p.doc_ids == ["003_2daf1169395244c2"]
    alone = rule_plan("郯城县2022年社会消费品零售总额是多少？", history=[prev], catalog=catalog)
    assert alone.standalone.startswith("郯城县")


def test_a_question_in_parts_is_split_with_its_subject(catalog):
    """Each later part keeps the first part's subject but not its year or kind of figure, so
    2023年计划再建成多少 is not checked against 2022 or against 建成了 (an achievement)."""
    parts = question_parts("郯城县2022年建成了多少高标准农田？2023年计划再建成多少？", catalog)
    assert parts == ["郯城县2022年建成了多少高标准农田？", "建成高标准农田，2023年计划再建成多少？"]
    assert question_parts("郯城县2022年建成了多少高标准农田？", catalog) == []
    assert question_parts("一？二？三？四？五？", catalog) == []
