"""Answers drawn from the records themselves (counts, lists), each item cited, no model."""

from __future__ import annotations

from helpers import seed_text

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
