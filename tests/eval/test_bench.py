"""The model benchmarks' mechanics on a tiny random-weight model (fast; its numbers mean
nothing, only that every figure is measured and reported). Real numbers: `llmstruct bench
--model`, `--model --corpus` and `--answers`, quoted in README."""

from __future__ import annotations

import pytest
from helpers import SEEDS, tiny_random_backend

from llmstruct.eval.bench.structure import corpus_benchmark, model_benchmark

pytestmark = pytest.mark.slow  # loads the tokenizer and compiles grammars


@pytest.fixture(scope="module")
def tiny(model_dir):
    return tiny_random_backend(model_dir)


def test_model_benchmark_reports_both_ratios(tiny):
    r = model_benchmark(tiny, [SEEDS / "000_5c1aadecc78db95a.txt"], per_file=2, workers=2, repeat=1)
    assert r["sample_items"] == 2 and r["valid_outputs"] == "2/2"  # the grammar makes even babble valid
    assert r["constrained_over_unconstrained_per_token"] > 0 and r["pipeline_over_bare_model"] > 0
    assert r["prefill_tokens_per_second"] > 0 and r["corpus_items_needing_model"] >= 2


def test_corpus_benchmark_runs_the_structure_path(tiny, tmp_path):
    small = tmp_path / "bulletin.txt"
    text = (SEEDS / "000_5c1aadecc78db95a.txt").read_text(encoding="utf-8")
    small.write_text(text[: text.index("\n5.")], encoding="utf-8")  # items 1-4 of the bulletin
    r = corpus_benchmark(tiny, [small], workers=4)
    assert r["files"] == 1 and not r["failures"] and r["items"] >= 4
    assert r["items_asked_model"] >= 1 and r["truncated_outputs"] == 0
    assert r["indicators_grounded_rate"] == 1.0 and r["wall_seconds"] > 0
