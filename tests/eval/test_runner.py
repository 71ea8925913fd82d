"""The eval harness scores what systems really produced: perturb an output, the right number moves.

Fast tests score rules-only records (no model) and hand-built answers and hits; the gate
test runs the rules-only extraction suite against the thresholds kept in the repo, as CI
does. The slow test runs the smoke suite with the real default model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from typer.testing import CliRunner

from llmstruct.app.cli import app
from llmstruct.eval.answers import AnswerRun, score_answers
from llmstruct.eval.extraction import SystemRun, anchor_gold, assign, rules_run, score_system
from llmstruct.eval.gold import load_extraction, load_questions
from llmstruct.eval.matching import PRF, name_match, norm, same_number
from llmstruct.eval.report import to_html, to_markdown, write_reports
from llmstruct.eval.retrieval import run_retrieval
from llmstruct.eval.runner import (
    THRESHOLDS_FILE,
    EvalOptions,
    Suite,
    SuiteError,
    check_gate,
    load_suite,
    load_thresholds,
    run_eval,
    speed_summary,
)
from llmstruct.schema import Answer, Citation, Hit, Span

SEEDS = ROOT / "seeds"
runner = CliRunner()


@pytest.fixture(scope="module")
def gold():
    return load_extraction(ROOT / "evals/gold/extraction.yaml")


@pytest.fixture(scope="module")
def questions():
    return {q.id: q for q in load_questions(ROOT / "evals/gold/questions.yaml")}


@pytest.fixture(scope="module")
def rules(gold):
    files = sorted({SEEDS / g.file for g in gold})
    return rules_run(files)[0]


def _replace_item(run: SystemRun, item_id: str, **update) -> SystemRun:
    doc = item_id.split("#")[0]
    rec = run.records[doc]
    items = [i.model_copy(update=update) if i.item_id == item_id else i for i in rec.items]
    records = {**run.records, doc: rec.model_copy(update={"items": items})}
    return SystemRun(run.name, run.title, records, run.texts, run.seconds, run.items, run.calls, run.notes)


def test_normalisation_and_counts():
    assert norm("一般公共預算收入 17.03億元") == "一般公共预算收入17.03亿元"
    assert name_match("签约项目", "经济开发区签约项目") and not name_match("项", "签约项目")
    assert same_number(10.1, 10.1000001) and not same_number(10.1, 10.2)
    p = PRF(3, 4, 6)
    assert (p.precision, p.recall, round(p.f1, 4)) == (0.75, 0.5, 0.6)
    assert PRF(0, 0, 5).f1 == 0.0 and PRF(0, 0, 0).f1 is None


def test_every_gold_item_is_located_and_rates_are_consistent(rules, gold):
    r = score_system(rules, gold)
    assert r["located"] == len(gold) == 53 and not r["problems"]
    seg = r["segmentation"]
    assert seg["recall"] == round(seg["gold_found"] / seg["gold_items"], 4)
    assert seg["precision"] == round(seg["tp_items"] / seg["judged_items"], 4)
    for f in r["fields"].values():
        assert f["tp"] <= min(f["pred"], f["gold"]) or f["pred"] == 0
    assert r["grounding"]["spans"]["rate"] == 1.0
    assert sum(d["gold_items"] for d in r["per_doc"].values()) == 53


def test_dropping_units_costs_exactly_their_recall(rules, gold):
    base = score_system(rules, gold)["fields"]["units"]
    item = rules.records["000_5c1aadecc78db95a"].items[6]  # #7: four named units in the gold
    assert item.item_id == "000_5c1aadecc78db95a#7"
    worse = score_system(_replace_item(rules, item.item_id, units=[]), gold)["fields"]["units"]
    assert worse["gold"] == base["gold"]
    assert base["tp"] - worse["tp"] == 4
    assert worse["pred"] == base["pred"] - len(item.units)


def test_a_wrong_value_is_a_value_error_not_a_missed_figure(rules, gold):
    item = rules.records["000_5c1aadecc78db95a"].items[1]  # #2: target 一般公共预算收入增长 7%
    target = item.targets[0]
    assert target.value == 7
    bad = target.model_copy(update={"value": -7.0})
    run = _replace_item(rules, item.item_id, targets=[bad] + list(item.targets[1:]))
    a, b = score_system(rules, gold)["fields"], score_system(run, gold)["fields"]
    assert b["indicators"]["tp"] == a["indicators"]["tp"]
    assert b["indicator_value"]["tp"] == a["indicator_value"]["tp"] - 1
    assert b["indicator_unit"]["tp"] == a["indicator_unit"]["tp"]


def test_a_missing_record_turns_its_gold_into_misses(rules, gold):
    doc = "001_0bd5adcbd4f51cd8"
    run = SystemRun(rules.name, rules.title, {k: v for k, v in rules.records.items() if k != doc}, rules.texts,
                    rules.seconds, rules.items)
    r = score_system(run, gold)
    assert r["per_doc"][doc]["segmentation"]["recall"] == 0.0
    assert r["per_doc"][doc]["fields"]["units"]["tp"] == 0
    assert r["per_doc"][doc]["fields"]["units"]["gold"] > 0


def test_a_tampered_span_is_not_grounded(rules, gold):
    item = rules.records["000_5c1aadecc78db95a"].items[1]
    ld = item.leaders[0]
    fake = ld.model_copy(update={"span": Span.model_construct(start=ld.span.start + 1, end=ld.span.end + 1,
                                                              text=ld.span.text)})
    r = score_system(_replace_item(rules, item.item_id, leaders=[fake]), gold)
    assert r["grounding"]["spans"]["hits"] == r["grounding"]["spans"]["total"] - 1


def test_items_are_matched_by_seq_no_and_position(rules, gold):
    anchors, _ = anchor_gold(gold, rules.texts)
    by_key = {a.key: a for a in anchors}
    it = assign(by_key["003_2daf1169395244c2#21"], rules.records["003_2daf1169395244c2"])
    assert it.item_id == "003_2daf1169395244c2#21"
    topic = next(a for a in anchors if a.gold.doc == "002_64fd41ca82a7d87d" and a.gold.task_quote.startswith("全力招商"))
    assert assign(topic, rules.records["002_64fd41ca82a7d87d"]).task.text.startswith("全力招商引资")


def _cite(file: str, text: str, quote: str, n: int = 1) -> Citation:
    pos = text.index(quote)
    return Citation(n=n, doc_id=Path(file).stem, source_file=file, start=pos, end=pos + len(quote), quote=quote)


def test_answer_scores(questions):
    texts = {p.name: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}
    f0 = "000_5c1aadecc78db95a.txt"
    q1, q66 = questions["q001"], questions["q072"]
    good = Answer(question=q1.question, answer="上半年一般公共预算收入10.1亿元[1]。", refused=False,
                  citations=[_cite(f0, texts[f0], "实现一般公共预算收入 10.1 亿元")])
    invented = Answer(question=q1.question, answer="一般公共预算收入10.1亿元，增长99%。", refused=False,
                      citations=[_cite(f0, texts[f0], "实现一般公共预算收入 10.1 亿元")])
    elsewhere = Answer(question=q1.question, answer="10.1亿元", refused=False,
                       citations=[_cite(f0, texts[f0], "朱凤华")])
    refused = Answer(question=q66.question, answer="文档中没有找到能回答这个问题的内容。", refused=True)
    r = score_answers(AnswerRun("t", "t", {"q001": good, "q072": refused}), [q1, q66], texts)
    o = r["overall"]
    assert o["key_accuracy"]["rate"] == 1.0 and o["refusal_correct"]["rate"] == 1.0
    assert o["citation_precision"]["rate"] == 1.0 and o["citation_recall"]["rate"] == 1.0
    assert o["unsupported_numbers"]["hits"] == 0 and o["citations_verified"]["rate"] == 1.0  # [1] is a mark
    r2 = score_answers(AnswerRun("t", "t", {"q001": invented}), [q1], texts)["overall"]
    assert r2["unsupported_numbers"]["hits"] == 1 and r2["unsupported_numbers"]["total"] == 2
    r3 = score_answers(AnswerRun("t", "t", {"q001": elsewhere}), [q1], texts)["overall"]
    assert r3["citation_precision"]["rate"] == 0.0 and r3["key_accuracy"]["rate"] == 1.0
    wrong_refusal = Answer(question=q1.question, answer="无", refused=True)
    r4 = score_answers(AnswerRun("t", "t", {"q001": wrong_refusal, "q072": good}), [q1, q66], texts)["overall"]
    assert r4["false_refusal"]["rate"] == 1.0 and r4["refused_unanswerable"]["rate"] == 0.0
    assert r4["refusal_correct"]["rate"] == 0.0


def test_retrieval_ranks(questions):
    texts = {p.name: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}
    f0 = "000_5c1aadecc78db95a.txt"
    q1 = questions["q001"]
    pos = texts[f0].index("实现一般公共预算收入 10.1 亿元")

    def hit(start, end):
        return Hit(chunk_id=str(start), doc_id="d", item_id="d#1", source_file=f0, start=start, end=end,
                   text=texts[f0][start:end])

    at_two = lambda q, k: [hit(0, 10), hit(pos - 5, pos + 5), hit(pos, pos + 3)]  # noqa: E731
    r = run_retrieval([q1, questions["q072"]], at_two, texts)
    assert r["overall"]["questions"] == 1
    assert r["ranks"]["q001"] == 2
    assert (r["overall"]["hit@1"], r["overall"]["hit@3"], r["overall"]["mrr"]) == (0.0, 1.0, 0.5)
    r = run_retrieval([q1], lambda q, k: [hit(0, 10)], texts)
    assert r["overall"]["mrr"] == 0.0 and r["ranks"]["q001"] is None


def test_suites_and_errors(tmp_path):
    smoke = load_suite(["smoke"], ROOT)
    assert 0 < len(smoke.items) <= 6 and 0 < len(smoke.questions) <= 5
    both = load_suite(["extraction", "questions"], ROOT)
    assert (len(both.items), len(both.questions)) == (53, 77) and both.name == "extraction+questions"
    assert len(load_suite([str(ROOT / "evals/gold/questions.yaml")], ROOT).questions) == 77
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"extraction": ["no-such-item#1"]}), encoding="utf-8")
    with pytest.raises(SuiteError):
        load_suite([str(bad)], ROOT)
    with pytest.raises(SuiteError):
        load_suite(["nonsense"], ROOT)


def test_gate_fails_on_low_and_on_unmeasured_metrics():
    result = {"sections": {"extraction.llmstruct": "not run: --rules-only"},
              "extraction": {"rules": {"fields": {"units": {"f1": 0.9}}}}}
    checks = check_gate(result, {"min": {"extraction.rules.fields.units.f1": 0.8,
                                         "extraction.llmstruct.fields.units.f1": 0.5},
                                 "max": {"extraction.rules.fields.units.f1": 0.85}})
    by = {(c.metric, c.op): c for c in checks}
    assert by[("extraction.rules.fields.units.f1", "min")].ok
    assert not by[("extraction.rules.fields.units.f1", "max")].ok
    missing = by[("extraction.llmstruct.fields.units.f1", "min")]
    assert not missing.ok and "--rules-only" in missing.note


@pytest.fixture(scope="module")
def rules_result():
    return run_eval(load_suite(["extraction"], ROOT), EvalOptions(rules_only=True))


def test_fast_gate_passes_on_the_rules_only_suite(rules_result):
    """The CI regression gate: every threshold in the 'extraction' block is measured and met."""
    checks = check_gate(rules_result, load_thresholds(ROOT / THRESHOLDS_FILE, "extraction"))
    assert len(checks) >= 10
    assert [c for c in checks if not c.ok] == []


def test_reports_are_self_contained_and_escaped(rules_result, tmp_path):
    result = json.loads(json.dumps(rules_result))
    result["meta"]["suite"] = "<script>alert(1)</script>"
    page = to_html(result)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<svg" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    md = to_markdown(rules_result)
    assert "| units+role 单位及角色 |" in md
    paths = write_reports(rules_result, tmp_path / "r.html")
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["extraction"]["rules"]["fields"]["units"] == rules_result["extraction"]["rules"]["fields"]["units"]
    assert [p.suffix for p in paths] == [".html", ".md", ".json"]
    dotted = write_reports(rules_result, tmp_path / "extraction-1.5b.html")
    assert [p.name for p in dotted] == ["extraction-1.5b.html", "extraction-1.5b.md", "extraction-1.5b.json"]


def test_cli_gate_exit_codes(tmp_path):
    ok = runner.invoke(app, ["eval", "extraction", "--rules-only", "--gate", str(ROOT / THRESHOLDS_FILE),
                             "--report", str(tmp_path / "e.html")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "e.html").is_file() and (tmp_path / "e.json").is_file()
    strict = tmp_path / "t.yaml"
    strict.write_text(yaml.safe_dump({"extraction": {"min": {"extraction.rules.fields.units.f1": 1.01}}}),
                      encoding="utf-8")
    failed = runner.invoke(app, ["eval", "extraction", "--rules-only", "--gate", str(strict)])
    assert failed.exit_code == 1
    assert runner.invoke(app, ["eval", "nonsense"]).exit_code == 64
    assert runner.invoke(app, ["eval", "smoke", "--gate", str(strict)]).exit_code == 64


def test_the_extraction_suite_scores_seeds_and_development_corpus_apart(rules_result, tmp_path):
    """One run, two gold sets, reported apart; the seeds' numbers are what the gate reads."""
    suite = load_suite(["extraction"], ROOT)
    assert (len(suite.items), len(suite.corpus_items)) == (53, len(load_extraction(ROOT / "evals/corpus/gold.yaml")))
    assert {i.file for i in suite.items}.isdisjoint({i.file for i in suite.corpus_items})
    alone = load_suite(["corpus"], ROOT)
    assert not alone.items and len(alone.corpus_items) == len(suite.corpus_items)
    assert load_suite([str(ROOT / "evals/corpus/gold.yaml")], ROOT).corpus_items == alone.corpus_items
    seeds_only = run_eval(Suite("x", items=suite.items), EvalOptions(rules_only=True))
    assert seeds_only["extraction"]["rules"]["fields"] == rules_result["extraction"]["rules"]["fields"]
    corpus = rules_result["extraction_corpus"]["rules"]
    assert corpus["located"] == corpus["gold_items"] == len(suite.corpus_items) and not corpus["problems"]
    assert set(corpus["coverage"]) == {i.doc for i in suite.corpus_items}  # figure coverage per corpus document
    assert rules_result["sections"]["extraction_corpus.rules"] == "ran"
    assert rules_result["meta"]["gold_sets"]["corpus"]["docs_dir"] == "evals/corpus"
    md = to_markdown(rules_result)
    seeds_at, corpus_at = md.index("## Extraction: seeds"), md.index("## Extraction: development corpus")
    assert seeds_at < corpus_at and md.count("Figure coverage") == 2
    assert "01_lishan_fengong_2023" in md[corpus_at:] and "01_lishan_fengong_2023" not in md[:corpus_at]
    page = to_html(rules_result)
    assert "Extraction: development corpus" in page and page.count("Figure coverage") == 2
    # the seeds' gate is the same block as before and reads no corpus number
    block = load_thresholds(ROOT / THRESHOLDS_FILE, "extraction")
    assert all(k.startswith("extraction.") for op in block.values() for k in op)
    assert speed_summary(rules_result)["extraction_corpus.rules"]["items"] > 0
    # the corpus has a gate block of its own, for `llmstruct eval corpus --gate`
    checks = check_gate(rules_result, load_thresholds(ROOT / THRESHOLDS_FILE, "corpus"))
    assert len(checks) >= 8 and [c for c in checks if not c.ok] == []


def test_a_subset_may_name_corpus_items(tmp_path):
    sub = tmp_path / "sub.yaml"
    sub.write_text(yaml.safe_dump({"extraction": ["000_5c1aadecc78db95a#1", "03_caidian_fenjie_2023#1"]}),
                   encoding="utf-8")
    suite = load_suite([str(sub)], ROOT)
    assert [i.doc for i in suite.items] == ["000_5c1aadecc78db95a"]
    assert [i.doc for i in suite.corpus_items] == ["03_caidian_fenjie_2023"]
    result = run_eval(suite, EvalOptions(rules_only=True))
    assert result["extraction"]["rules"]["gold_items"] == result["extraction_corpus"]["rules"]["gold_items"] == 1


def test_a_corpus_only_run_is_scored_by_the_cli(tmp_path):
    out = runner.invoke(app, ["eval", "corpus", "--rules-only", "--report", str(tmp_path / "c.html")])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert "extraction" not in data and data["extraction_corpus"]["rules"]["gold_items"] > 0


@pytest.mark.slow
@pytest.mark.model
def test_smoke_suite_with_the_default_model_passes_its_gate():
    """The model-backed subset: the model pass on a few items and answers to a few questions, against
    the 'smoke' thresholds (CI runs this; the baseline and the store are left to the full run)."""
    result = run_eval(load_suite(["smoke"], ROOT), EvalOptions(baselines=False, use_store=False))
    assert result["sections"]["extraction.llmstruct"].startswith("ran"), result["sections"]
    checks = check_gate(result, load_thresholds(ROOT / THRESHOLDS_FILE, "smoke"))
    assert [c for c in checks if not c.ok] == []
