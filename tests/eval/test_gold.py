"""The hand-labelled gold must stay grounded in the seeds and keep its promised mix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from llmstruct.eval.gold import (
    CORPUS_DIR,
    CORPUS_FILE,
    EXTRACTION_FILE,
    QUESTIONS_FILE,
    load_extraction,
    load_questions,
    main,
    squash,
    summary,
    verify_gold,
)

SEED_FILES = sorted(p.name for p in (ROOT / "seeds").glob("*.txt"))
MIN_PER_TYPE = {
    "lookup": 20,
    "numeric": 12,
    "multi_hop": 8,
    "cross_document": 8,
    "count": 6,
    "unanswerable": 12,
}


@pytest.fixture(scope="module")
def items():
    return load_extraction(ROOT / EXTRACTION_FILE)


@pytest.fixture(scope="module")
def questions():
    return load_questions(ROOT / QUESTIONS_FILE)


def test_all_gold_quotes_verify():
    assert verify_gold(ROOT) == []


def test_items_cover_every_seed(items):
    assert len(SEED_FILES) == 5
    assert len(items) >= 36
    per_file = Counter(i.file for i in items)
    for name in SEED_FILES:
        assert per_file[name] >= 6, name
    multi = {i.doc for i in items if i.file.startswith("004_")}
    assert len(multi) >= 4


def test_question_mix(questions):
    assert len(questions) >= 64
    by_type = Counter(q.type for q in questions)
    for qtype, minimum in MIN_PER_TYPE.items():
        assert by_type[qtype] >= minimum, qtype
    assert len({q.id for q in questions}) == len(questions)


def test_answerable_questions_have_evidence(questions):
    for q in questions:
        if q.answerable:
            assert q.support, q.id
            assert q.answer_keys, q.id
        else:
            assert q.type == "unanswerable" and not q.support and not q.answer_keys, q.id


def test_answer_keys_are_grounded(questions):
    for q in questions:
        evidence = squash("".join(s.quote for s in q.support))
        answer = squash(q.answer)
        for key in q.answer_keys:
            k = squash(key)
            assert k in evidence or k in answer, (q.id, key)


def _broken_root(tmp_path: Path) -> Path:
    """A copy of the gold with one bad quote, one bad enum and one duplicate id."""
    (tmp_path / "seeds").symlink_to(ROOT / "seeds", target_is_directory=True)
    gold = tmp_path / "evals" / "gold"
    gold.mkdir(parents=True)
    raw_items = yaml.safe_load((ROOT / EXTRACTION_FILE).read_text(encoding="utf-8"))
    raw_items[0]["task_quote"] = "这句话不在任何种子文件里"
    raw_items[1]["units"][0]["role"] = "owner"
    raw_qs = yaml.safe_load((ROOT / QUESTIONS_FILE).read_text(encoding="utf-8"))
    raw_qs[1]["id"] = raw_qs[0]["id"]
    for path, data in ((EXTRACTION_FILE, raw_items), (QUESTIONS_FILE, raw_qs)):
        (tmp_path / path).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return tmp_path


def test_checker_reports_each_problem(tmp_path):
    problems = verify_gold(_broken_root(tmp_path))
    text = "\n".join(problems)
    assert "task_quote not verbatim" in text
    assert "units.0.role" in text
    assert "duplicate id" in text
    assert len(problems) == 3


def test_cli_exit_codes(tmp_path, capsys):
    assert main([str(ROOT)]) == 0
    assert main([str(_broken_root(tmp_path))]) == 1
    out = capsys.readouterr().out
    assert "questions:" in out and "problems: 3" in out


def test_the_development_corpus_gold_is_checked_against_its_own_documents(tmp_path):
    """evals/corpus/gold.yaml is validated like the seeds' gold, its quotes found in evals/corpus/."""
    assert (ROOT / CORPUS_FILE).is_file()
    corpus = load_extraction(ROOT / CORPUS_FILE)
    assert len(corpus) >= 40 and all((ROOT / CORPUS_DIR / i.file).is_file() for i in corpus)
    root = _broken_root(tmp_path)
    (root / CORPUS_DIR).mkdir(parents=True)
    for i in {i.file for i in corpus}:
        (root / CORPUS_DIR / i).symlink_to(ROOT / CORPUS_DIR / i)
    raw = yaml.safe_load((ROOT / CORPUS_FILE).read_text(encoding="utf-8"))
    raw[0]["units"][0]["name"] = "不存在的单位"
    (root / CORPUS_FILE).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    problems = [p for p in verify_gold(root) if p.startswith(str(CORPUS_FILE))]
    assert len(problems) == 1 and "units[0].name not in" in problems[0]
    assert any("development corpus" in line for line in summary(ROOT))
