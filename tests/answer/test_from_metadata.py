"""Questions about a document itself (文号, date, speaker, issuer) answered from its metadata,
each value cited at its span; questions about tasks are left to the other paths."""

from __future__ import annotations

import pytest
from helpers import seed_text

from llmstruct.answer.asker import Asker
from llmstruct.answer.from_metadata import asked_field, metadata_answer
from llmstruct.answer.planning import rule_plan


@pytest.mark.parametrize(("question", "value"), [
    ("临沭县的通报文号是什么？", "沭政督字〔2021〕22号"),
    ("青岛市政府工作报告是谁作的？", "青岛市代市长赵豪志"),
    ("临沭县通报是什么时候印发的？", "2021-07-13"),
    ("临沭县通报的发文机关是哪个单位？", "临沭县人民政府办公室"),
])
def test_metadata_is_answered_and_cited(catalog, question, value):
    a = metadata_answer(question, rule_plan(question, catalog=catalog), catalog)
    assert a is not None and not a.refused and value in a.answer and len(a.citations) == 1
    c = a.citations[0]
    assert seed_text(c.source_file)[c.start:c.end] == c.quote


def test_the_asker_answers_metadata_without_a_model(catalog):
    a = Asker(catalog, None).ask("郯城县政府工作报告的报告人是谁？")
    assert not a.refused and "于广威" in a.answer and a.citations


@pytest.mark.parametrize("question", ["污水处理厂什么时候完工？", "这项工作谁做？", "临沭县第3项任务的责任单位是什么？"])
def test_task_questions_are_not_metadata(catalog, question):
    p = rule_plan(question, catalog=catalog)
    assert asked_field(question) is None or metadata_answer(question, p, catalog) is None
