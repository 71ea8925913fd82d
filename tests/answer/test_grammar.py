"""The per-question answer grammar: only retrieved passage numbers, one statement per place."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmstruct.answer.grammar import answer_schema, grouped_schema
from llmstruct.answer.passages import Passage, retrieve
from llmstruct.answer.planning import rule_plan
from llmstruct.answer.prompt import place_groups


def test_grammar_admits_only_retrieved_numbers():
    schema = answer_schema((1, 2, 3), 2)
    ok = '{"refuse":false,"statements":[{"quote":"a","text":"b","cites":[3]}]}'
    assert schema.model_validate_json(ok).root.statements[0].cites == [3]
    with pytest.raises(ValidationError):
        schema.model_validate_json('{"refuse":false,"statements":[{"quote":"a","text":"b","cites":[4]}]}')
    with pytest.raises(ValidationError):  # answering means at least one statement
        schema.model_validate_json('{"refuse":false,"statements":[]}')
    assert schema.model_validate_json('{"refuse":true}').root.refuse is True
    enum = schema.model_json_schema()["$defs"]["Statement_3"]["properties"]["cites"]["items"]["enum"]
    assert enum == [1, 2, 3]


def test_a_question_about_several_places_gets_one_statement_per_place(catalog):
    """Statement i may quote only place i's sentences and cite only place i's passages; a
    refusal stays possible, a missing or extra place is not."""
    p = rule_plan("沂源县和郯城县2023年的进出口增长目标分别是多少？", catalog=catalog)
    passages = [Passage.of(h) for h in retrieve(p, catalog, k=4)]
    groups = place_groups(passages, p.doc_ids)
    assert len(groups) == 2 and all(passages[g[0]].hit.doc_id == d for g, d in zip(groups, p.doc_ids))
    assert place_groups(passages, p.doc_ids[:1]) == []
    schema = grouped_schema((((1, 2), ("年进出口总额增长2%左右。",)), ((3,), ("力争进出口总额增长10%以上。",))))
    ok = {"refuse": False, "statements": [
        {"quote": "年进出口总额增长2%左右。", "text": "增长2%左右", "cites": [1]},
        {"quote": "力争进出口总额增长10%以上。", "text": "增长10%以上", "cites": [3]}]}
    assert len(schema.model_validate(ok).root.statements) == 2
    assert schema.model_validate({"refuse": True}).root.refuse
    swapped = {"refuse": False, "statements": [ok["statements"][1], ok["statements"][0]]}
    wrong_cite = {"refuse": False, "statements": [ok["statements"][0], {**ok["statements"][1], "cites": [1]}]}
    for bad in (swapped, wrong_cite, {"refuse": False, "statements": ok["statements"][:1]}):
        with pytest.raises(ValidationError):
            schema.model_validate(bad)
