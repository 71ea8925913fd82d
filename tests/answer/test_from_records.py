"""Answers drawn from the records themselves (counts, lists), each item cited, no model."""

from __future__ import annotations

from helpers import ROOT, seed_text

from llmstruct.answer.asker import Asker
from llmstruct.answer.from_records import records_answer
from llmstruct.answer.planning import rule_plan


def test_counts_come_from_records_with_every_item_cited(catalog):
    q = "临沭县通报中刘洪明作为责任领导的任务有几项？"
    a = records_answer(q, rule_plan(q, catalog=catalog), catalog)
    assert a is not None and not a.refused
    assert "共8项" in a.answer
    assert len(a.citations) == 8
    text = seed_text(a.citations[0].source_file)
    for c in a.citations:
        assert text[c.start:c.end] == c.quote and "刘洪明" in c.quote


def test_timed_answer_counts_records_answers_as_content(catalog):
    """The chat-latency benchmark times what a user sees: a count answered from the records
    arrives as the final answer, with no generation."""
    from llmstruct.eval.bench.answers import timed_answer

    t = timed_answer(Asker(catalog, None), "临沭县通报中刘洪明作为责任领导的任务有几项？")
    assert not t.generated and not t.answer.refused and t.answer.citations
    assert 0 <= t.first_seconds <= t.total_seconds


def test_a_status_question_cites_what_decided_each_status(catalog):
    """哪些任务滞后 lists the tasks behind, each cited at the figure (or the words) that put it
    there, with the judgement's basis in the answer."""
    q = "峄城区哪些任务进展滞后？"
    a = records_answer(q, rule_plan(q, catalog=catalog), catalog)
    assert a is not None and not a.refused and a.citations
    assert "状态为“滞后”" in a.answer and "固定资产投资增速-4.7%" in a.answer
    text = seed_text(a.citations[0].source_file)
    for c in a.citations:
        assert text[c.start:c.end] == c.quote
    assert any("下降" in c.quote for c in a.citations)


def test_a_leader_written_once_with_another_character_is_counted_and_said(catalog):
    """朱凤华 is printed 22 times in the 临沭 bulletin and once as 朱风华 (第8项): the count
    merges them and says which item, under which spelling, was merged."""
    from collections import Counter

    from llmstruct.answer.catalog import name_variants

    doc = next(d for d, v in catalog.leader_variants.items() if v)
    assert catalog.leader_variants[doc] == {"朱风华": "朱凤华"}
    assert catalog.leader_names("朱风华", doc) == ["朱凤华", "朱风华"]
    q = "在临沭县2021年的进展通报中，朱凤华作为责任领导负责几项任务？"
    a = records_answer(q, rule_plan(q, catalog=catalog), catalog)
    assert a is not None and not a.refused and "共23项" in a.answer and len(a.citations) == 23
    assert "第8项" in a.answer and "写作“朱风华”" in a.answer
    text = seed_text(a.citations[0].source_file)
    assert any("朱风华" in c.quote for c in a.citations)
    assert all(text[c.start:c.end] == c.quote for c in a.citations)
    # two people who are each printed often, or a rare name near two usual ones, stay apart
    assert name_variants(Counter({"张伟": 5, "张玮": 4})) == {}
    assert name_variants(Counter({"王小明": 9, "王小鸣": 1, "王大鸣": 6})) == {}
    assert name_variants(Counter({"王小明": 9, "王小鸣": 1})) == {"王小鸣": "王小明"}


def test_a_question_about_a_place_no_document_is_about_is_refused_as_such(catalog):
    """广州市 and 陕西 are in the national gazetteer but no seed is about them (the seeds are
    places in 山东省): the answer says so instead of answering from another place."""
    assert catalog.places_not_covered("广州市2021年一季度生产总值增长了多少？") == ["广州市"]
    assert catalog.places_not_covered("青岛市2021年一季度生产总值增长了多少？") == []  # a seed is about it
    assert catalog.places_not_covered("陕西的地区生产总值目标是多少？") == ["陕西"]
    assert catalog.places_not_covered("山东省临沭县2021年的目标") == []
    assert catalog.places_not_covered("加快新乡村建设") == []  # 新乡(市) inside a word is no place
    final = list(Asker(catalog, None).stream("广州市2021年一季度生产总值增长了多少？"))[-1]
    assert final.answer.refused and final.answer.refusal == "place_not_in_corpus"
    assert final.refusal.message == "文档库中没有关于广州市的文件"
    assert not catalog.places_not_covered("临沭县2021年进出口总额计划增长百分之几？")


def test_no_place_is_called_missing_while_some_document_has_no_known_place():
    """The development corpus holds excerpts without their headers (07 is about 城厢区 and
    never says so): with such documents, no question is refused for its place."""
    from llmstruct.answer.catalog import load_catalog

    corpus = load_catalog([ROOT / "evals" / "corpus"])
    assert any(d.county is None and d.city is None and d.province is None for d in corpus.docs.values())
    assert corpus.places_not_covered("城厢区2022年民生实事进展如何？") == []
    assert corpus.places_not_covered("广州市的目标是多少？") == []
