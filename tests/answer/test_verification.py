"""Verification in code over hand-written model outputs and passages sliced from the real
seed records: citations point into the original file, wrong ones are repaired, evidence
must fit the question."""

from __future__ import annotations

from helpers import seed_text

from llmstruct.answer.grammar import answer_schema
from llmstruct.answer.passages import Passage, retrieve
from llmstruct.answer.planning import rule_plan
from llmstruct.answer.verification import VerifyReport, evidence_fits, verify_statement


def _statement(quote: str, text: str, cites: list[int], n: int = 5):
    schema = answer_schema(tuple(range(1, n + 1)), 2)
    out = schema.model_validate({"refuse": False, "statements": [{"quote": quote, "text": text, "cites": cites}]}).root
    return out.statements[0]


def test_verified_citations_point_into_the_original_file(catalog):
    p = rule_plan("临沭县2021年上半年一般公共预算收入是多少？", catalog=catalog)
    passages = [Passage.of(h) for h in retrieve(p, catalog)]
    n = next(i for i, ps in enumerate(passages, 1) if "10.1" in ps.text)
    report = VerifyReport()
    v = verify_statement(_statement("实现一般公共预算收入10.1亿元", "上半年一般公共预算收入10.1亿元", [n], len(passages)),
                         passages, report, asks_number=True)
    assert v is not None and v.repaired == []
    c = v.citations[0]
    text = seed_text(c.source_file)
    assert text[c.start:c.end] == c.quote
    assert c.quote == "实现一般公共预算收入 10.1 亿元"  # the original keeps its spaces


def test_wrong_cite_is_repaired_and_unsupported_numbers_are_removed(catalog):
    p = rule_plan("临沭县2021年上半年一般公共预算收入是多少？", catalog=catalog)
    passages = [Passage.of(h) for h in retrieve(p, catalog)]
    n = next(i for i, ps in enumerate(passages, 1) if "10.1" in ps.text)
    wrong = next(i for i, ps in enumerate(passages, 1) if "10.1" not in ps.text)
    report = VerifyReport()
    v = verify_statement(_statement("实现一般公共预算收入10.1亿元", "收入999亿元", [wrong], len(passages)),
                         passages, report, asks_number=True)
    assert v is not None and v.citations[0].n == n
    assert "999" not in v.text and "10.1" in v.text
    assert report.cite_repaired == 1 and report.text_repaired == 1
    gone = verify_statement(_statement("本县GDP为999亿元", "999亿元", [n], len(passages)), passages, report, True)
    assert gone is None and report.dropped_quote == 1


def test_evidence_must_fit_the_question(catalog):
    p = rule_plan("临沭县2021年全年地区生产总值达到多少亿元？", catalog=catalog)
    passages = [Passage.of(h) for h in retrieve(p, catalog)]
    n = next(i for i, ps in enumerate(passages, 1) if "106" in ps.text)
    v = verify_statement(_statement("预计上半年可实现地区生产总值106亿元", "106亿元", [n], len(passages)),
                         passages, VerifyReport(), True)
    assert v is not None
    assert evidence_fits(p.standalone, [v], passages)  # a half-year figure is not the full year
    ok = rule_plan("临沭县上半年地区生产总值预计多少亿元？", catalog=catalog)
    assert evidence_fits(ok.standalone, [v], passages) is None


def test_a_target_does_not_answer_what_was_achieved(catalog):
    """The records say what kind each quoted figure is: 沂源县's task list states only the
    target 完成投资238亿元以上, which answers the plan question and not the progress one."""
    done = rule_plan("沂源县2023年上半年重大项目已完成投资多少？", catalog=catalog)
    passages = [Passage.of(h) for h in retrieve(done, catalog)]
    n = next(i for i, ps in enumerate(passages, 1) if "238" in ps.text)
    v = verify_statement(_statement("完成投资238亿元以上", "238亿元以上", [n], len(passages)), passages, VerifyReport(), True)
    assert v is not None
    assert evidence_fits(done.standalone, [v], passages, catalog=catalog)
    planned = rule_plan("沂源县2023年计划完成重大项目投资多少？", catalog=catalog)
    assert evidence_fits(planned.standalone, [v], passages, catalog=catalog) is None
    actual = rule_plan("临沭县上半年一般公共预算收入是多少？", catalog=catalog)
    got = [Passage.of(h) for h in retrieve(actual, catalog)]
    k = next(i for i, ps in enumerate(got, 1) if "10.1" in ps.text)
    w = verify_statement(_statement("实现一般公共预算收入 10.1 亿元", "10.1亿元", [k], len(got)), got, VerifyReport(), True)
    assert w is not None and evidence_fits(actual.standalone, [w], got, catalog=catalog) is None
    assert evidence_fits("临沭县一般公共预算收入的全年目标是多少？", [w], got, catalog=catalog)


def test_a_figure_about_something_else_does_not_answer(catalog):
    """郯城县's report gives no 2022 进出口总额; its 社会消费品零售总额 sentence has a number
    and the period, but the records name that figure, and it is not what was asked."""
    p = rule_plan("郯城县2022年进出口总额是多少？", catalog=catalog)
    passages = [Passage.of(h) for h in retrieve(p, catalog)]
    n = next(i for i, ps in enumerate(passages, 1) if "142.5" in ps.text)
    text = passages[n - 1].text
    v = verify_statement(_statement(text[text.index("社会消费品零售总额"):][:20], "142.5亿元", [n], len(passages)),
                         passages, VerifyReport(), True)
    assert v is not None and "142.5" in v.citations[0].quote  # the original, Traditional text
    assert evidence_fits(p.standalone, [v], passages, catalog=catalog) .code == "wrong_subject"
    assert evidence_fits("郯城县2022年社会消费品零售总额是多少？", [v], passages, catalog=catalog) is None


def test_a_statement_its_quote_contradicts_is_shown_as_the_quote(catalog):
    """"已全部完成" beside a quote saying 尚未启动 (or a 下降 the quote does not state, or a
    negation it does not make) never reaches the user: the quote itself is shown."""
    from llmstruct.answer.verification import statement_conflict

    p = rule_plan("临沭县市级科技创新平台申报进展如何？", catalog=catalog)
    passages = [Passage.of(h) for h in retrieve(p, catalog)]
    n = next(i for i, ps in enumerate(passages, 1) if "尚未启动" in ps.text)
    quote = "市级科技创新平台申报尚未启动"
    report = VerifyReport()
    v = verify_statement(_statement(quote, "市级科技创新平台申报已全部完成", [n], len(passages)), passages, report, False)
    assert v is not None and "text" in v.repaired and report.text_conflicts == 1
    assert "已全部完成" not in v.text and "尚未启动" in v.text
    kept = verify_statement(_statement(quote, "市级科技创新平台申报尚未启动", [n], len(passages)), passages, report, False)
    assert kept is not None and kept.repaired == [] and report.text_conflicts == 1
    assert statement_conflict("收入同比下降27.4%", "一般公共预算收入10.1亿元，同比增长27.4%") == "direction"
    assert statement_conflict("项目没有开工", "项目已开工建设") == "negation"
    assert statement_conflict("收入增长27.4%", "一般公共预算收入10.1亿元，同比增长27.4%") == ""
