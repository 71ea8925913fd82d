"""Computed numbers in the answer scores: a number code derived (2436 of 5500 − 3064, 101000 of
10.1亿元) is supported exactly when its computation checks; tamper with a computation and its
numbers count as unsupported. The real gold questions arithmetic answers, no model."""

from __future__ import annotations

import re

import pytest
from helpers import ROOT, SEEDS

from llmstruct.answer.asker import Asker
from llmstruct.answer.catalog import load_catalog
from llmstruct.answer.computation import check_computations, verify
from llmstruct.eval.answers import unsupported_numbers
from llmstruct.eval.gold import GoldQuestion, load_questions
from llmstruct.eval.matching import numbers_in
from llmstruct.schema import Answer, Computation

# the gold questions answered by code, with the numbers only a computation supports
COMPUTED = {"q023": ["10.25"], "q024": ["54.5"], "q025": ["2436"], "q030": ["4"], "q032": ["25134"],
            "q048": [],  # the ranking's values are all quoted
            "q053": ["0.07"]}


@pytest.fixture(scope="module")
def asker():
    return Asker(load_catalog([SEEDS]), None)


@pytest.fixture(scope="module")
def gold():
    return {q.id: q for q in load_questions(ROOT / "evals" / "gold" / "questions.yaml")}


def bare(asker, a: Answer) -> Answer:
    """The answer without the numbers of its documents' names (临沭县2021年·…关于2021年…): a
    document's year is named from its metadata, which no quote holds and no computation makes."""
    names = {n for c in a.citations for n in numbers_in(asker.catalog.docs[c.doc_id].label)}
    if not names:
        return a
    pattern = rf"(?<![\d.])(?:{'|'.join(map(re.escape, sorted(names, key=len, reverse=True)))})(?![\d.])"
    return a.model_copy(update={"answer": re.sub(pattern, "", a.answer)})


def asked(asker, q: str) -> tuple[GoldQuestion, Answer]:
    gq = GoldQuestion(id="q999", type="numeric", question=q, answer="-", answerable=True)
    return gq, bare(asker, asker.ask(q))


def tampered(a: Answer, i: int = 0, text: tuple[str, str] | None = None, **fields) -> Answer:
    """The answer with computation ``i`` changed (and a piece of its text replaced)."""
    comps = list(a.computations)
    comps[i] = Computation.model_validate({**comps[i].model_dump(), **fields})
    answer = a.answer if text is None else a.answer.replace(*text)
    assert text is None or answer != a.answer
    return Answer.model_validate({**a.model_dump(), "answer": answer, "computations": [c.model_dump() for c in comps]})


@pytest.mark.parametrize("qid", list(COMPUTED))
def test_computed_numbers_of_the_gold_questions_check_and_are_supported(asker, gold, qid):
    q = gold[qid]
    a = asker.ask(q.question)
    assert not a.refused and a.computations and check_computations(a) == []
    a = bare(asker, a)
    bad, n = unsupported_numbers(q, a)
    assert (bad, n > 0) == (0, True), a.answer
    text = re.sub(r"\[\d+\]", "", a.answer)
    assert all(x in numbers_in(text) for x in COMPUTED[qid])
    # the same text without its computations: exactly the computed numbers are unsupported
    assert unsupported_numbers(q, a.model_copy(update={"computations": []}))[0] == sum(
        numbers_in(text).count(x) for x in COMPUTED[qid])


@pytest.fixture(scope="module")
def gap(asker, gold):
    """还差 = 5500 − 3064 = 2436人, inputs [1] 5500 and [2] 3064."""
    q = gold["q025"]
    return q, bare(asker, asker.ask(q.question))


def test_a_wrong_result_fails_and_its_numbers_are_unsupported(gap):
    q, a = gap
    assert unsupported_numbers(q, a)[0] == 0
    # the record and the text agree on a wrong result
    wrong = tampered(a, result=2437, formula="5500 − 3064 = 2437人", text=("2436人", "2437人"))
    assert check_computations(wrong) == ["5500 − 3064 = 2437人: 2436 recomputed, 2437 written"]
    assert unsupported_numbers(q, wrong) == (5, 5)  # 2437, and 5500, 3064 quoted and in the formula
    # the record's result differs from the formula written
    off = tampered(a, result=2437)
    assert check_computations(off) and unsupported_numbers(q, off)[0] == 5


def test_an_operand_not_in_its_quote_fails(gap):
    q, a = gap
    swapped = tampered(a, inputs=[2, 1])  # 5500 is not in [2]'s quote
    assert check_computations(swapped) == ["5500 − 3064 = 2436人: [2] does not quote 5500",
                                           "5500 − 3064 = 2436人: [1] does not quote 3064"]
    assert unsupported_numbers(q, swapped)[0] == 5
    invented = tampered(a, operands=[5500, 3065], result=2435, formula="5500 − 3065 = 2435人",
                        text=("5500 − 3064 = 2436人", "5500 − 3065 = 2435人"))
    assert check_computations(invented) == ["5500 − 3065 = 2435人: [2] does not quote 3065"]
    assert unsupported_numbers(q, invented)[0] == 4  # 5500 twice, 3065, 2435; the quote's 3064 stays supported
    missing = tampered(a, inputs=[1, 3])
    assert check_computations(missing) == ["5500 − 3064 = 2436人: no citation [3]"]


def test_a_formula_not_in_the_answer_fails(gap):
    q, a = gap
    hidden = tampered(a, text=("还差 = 5500 − 3064 = 2436人", "还差2436人"))
    assert check_computations(hidden) == ["5500 − 3064 = 2436人: the formula is not in the answer"]
    assert unsupported_numbers(q, hidden) == (3, 3)  # 2436, and the 5500 and 3064 it was derived from
    unread = tampered(a, formula="5500 − 3064 = 2436")  # in the answer, but without the unit recorded
    assert check_computations(unread) == ["5500 − 3064 = 2436: the formula does not read the operands, "
                                          "the result and the unit"]


def test_a_computed_number_without_its_computation_is_unsupported(gap):
    q, a = gap
    assert unsupported_numbers(q, a.model_copy(update={"computations": []})) == (1, 5)


def test_a_converted_operand_needs_its_conversion(asker):
    """101000 of 相差 = 101000 − 91189 is 10.1亿元 of [1]: a wrong conversion fails, and so does
    the difference that used its result."""
    q, a = asked(asker, "临沭县和峄城区2021年一般公共预算收入相差多少？")
    i = next(k for k, c in enumerate(a.computations) if c.op == "conversion")
    assert check_computations(a) == [] and unsupported_numbers(q, a)[0] == 0
    wrong = tampered(a, i, result=110000, formula="10.1亿元 = 110000万元",
                     text=("10.1亿元 = 101000万元", "10.1亿元 = 110000万元"))
    assert check_computations(wrong) == ["101000 − 91189 = 9811万元: [1] does not quote 101000",
                                         "10.1亿元 = 110000万元: 10.1亿元 is 101000万元, not 110000"]
    assert all(problems for _, problems in verify(wrong))
    assert unsupported_numbers(q, wrong)[0] == len(numbers_in(re.sub(r"\[\d+\]", "", wrong.answer)))
    elsewhere = tampered(a, i, inputs=[2])  # 10.1亿元 is not what [2] says
    assert "10.1亿元 = 101000万元: [2] does not quote 10.1亿元" in check_computations(elsewhere)


def test_a_ranking_must_follow_its_values(asker):
    q, a = asked(asker, "峄城区哪个镇街的一般公共预算收入最高？")
    i = next(k for k, c in enumerate(a.computations) if c.op == "rank")
    assert check_computations(a) == [] and unsupported_numbers(q, a)[0] == 0
    second = tampered(a, i, result=11530)
    assert check_computations(second) == [f"{a.computations[i].formula}: result 11530 is not the first of the "
                                          "ranking (13100)"]
    ops = a.computations[i].operands
    reordered = tampered(a, i, operands=[ops[1], ops[0], *ops[2:]], result=ops[1])
    assert "the ranking does not read the operands in order" in check_computations(reordered)[0]
    assert unsupported_numbers(q, second)[0] > 0  # 13100 is in no quote: only a ranking that checks holds it


def test_numbers_in_a_cited_documents_label_are_its_name(asker, gold):
    """An answer names its documents (临沭县2021年·…): with the labels, those years are no
    unsupported numbers; without them they are."""
    q = gold["q025"]
    a = asker.ask(q.question)
    labels = {d: doc.label for d, doc in asker.catalog.docs.items()}
    assert unsupported_numbers(q, a)[0] > 0
    assert unsupported_numbers(q, a, labels)[0] == 0
