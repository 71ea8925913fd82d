"""The model pass end to end: per-row grammars, cache, checkpoints, resume, retry, CLI.

Mechanics run on a tiny random-weight model (fast, and it babbles, so only the grammar
makes its output valid); the kill -9 resume test runs the real default model via the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SEEDS, tiny_random_backend

from llmstruct.structure.labeling import build_job
from llmstruct.structure.llm_pass import Checkpoint, LabelCache, label_structured
from llmstruct.structure.pipeline import structure_file

ONLY = {"1", "2", "3", "4", "5", "6", "7"}

# Every test here loads a model and compiles grammars: minutes on a busy 2-core machine.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(model_dir):
    return tiny_random_backend(model_dir)


@pytest.fixture(scope="module")
def bulletin():
    return structure_file(SEEDS / "000_5c1aadecc78db95a.txt")


class Counting:
    """The real backend, counting the prompts it is sent."""

    def __init__(self, backend):
        self.backend, self.sent = backend, 0
        self.name, self.model_id, self.grammar = backend.name, backend.model_id, backend.grammar
        self.capabilities = backend.capabilities

    def generate_json(self, prompts, schema, max_new_tokens):
        self.sent += len(prompts)
        return self.backend.generate_json(prompts, schema, max_new_tokens)

    def generate_text(self, prompts, max_new_tokens):
        self.sent += len(prompts)
        return self.backend.generate_text(prompts, max_new_tokens)

    def chat_prompt(self, system, user):
        return self.backend.chat_prompt(system, user)

    def count_tokens(self, text):
        return self.backend.count_tokens(text)


def _dump(records):
    return [r.model_dump(mode="json") for r in records]


def test_items_of_different_shapes_share_a_batch(tiny, bulletin):
    jobs = [j for j in (build_job(bulletin.clean, it, tiny.model_id) for it in bulletin.records[0].items) if j.needs_model][:4]
    assert len({(len(j.asked_figures), len(j.asked_blocks)) for j in jobs}) > 1
    outs = tiny.generate_json([tiny.chat_prompt(j.system, j.user) for j in jobs], [j.schema for j in jobs], 200)
    for job, out in zip(jobs, outs):
        assert not out.truncated
        job.schema.model_validate_json(out.text)


def test_cache_means_an_unchanged_item_is_never_sent_twice(tiny, bulletin, tmp_path):
    cache = LabelCache(tmp_path / "cache")
    first = Counting(tiny)
    run1 = label_structured(bulletin, first, cache=cache, only=ONLY, batch_size=3)
    asked = [r for r in run1.items if r.source == "model"]
    assert first.sent == len(asked) > 0 and all(r.valid for r in asked)
    second = Counting(tiny)
    run2 = label_structured(bulletin, second, cache=cache, only=ONLY, batch_size=3)
    assert second.sent == 0
    assert {r.source for r in run2.items if r.item_id.split("#")[1] in ONLY} <= {"cache", "rules"}
    assert _dump(run1.records) == _dump(run2.records)
    prov = run1.records[0].provenance
    assert prov.method == "rules+llm" and prov.prompt_version == "label_item/v2" and prov.model_id == "tiny-random"


def test_an_interrupted_run_resumes_to_identical_output(tiny, bulletin, tmp_path):
    whole = label_structured(bulletin, tiny, only=ONLY, batch_size=2)

    class Stop(Exception):
        pass

    def stop_after_first(n, tokens):
        raise Stop

    path = tmp_path / "ckpt.jsonl"
    with pytest.raises(Stop):
        label_structured(bulletin, tiny, checkpoint=Checkpoint(path, resume=False), only=ONLY, batch_size=2,
                         on_batch=stop_after_first)
    assert len(path.read_text().splitlines()) == 2  # the first batch was checkpointed
    counting = Counting(tiny)
    resumed = label_structured(bulletin, counting, checkpoint=Checkpoint(path, resume=True), only=ONLY, batch_size=2)
    n_model = sum(r.source == "model" for r in whole.items)
    assert counting.sent == n_model - 2
    assert sum(r.source == "checkpoint" for r in resumed.items) == 2
    assert _dump(resumed.records) == _dump(whole.records)


def test_invalid_output_is_retried_once_then_recorded(tiny, bulletin):
    """Unconstrained, the random model never writes the JSON: one retry each, then rules values."""
    run = label_structured(bulletin, tiny, constrained=False, only={"1", "2"}, batch_size=2)
    asked = [r for r in run.items if r.source == "model"]
    assert asked and all(r.retries == 1 and not r.valid and r.error for r in asked)
    warnings = run.records[0].warnings
    assert any("model output invalid after retry" in w for w in warnings)
    rules = {i.item_id: i for i in bulletin.records[0].items}
    for item in run.records[0].items:
        if item.item_id.endswith(("#1", "#2")):
            assert item.model_dump() == rules[item.item_id].model_dump()


def _structure_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "llmstruct.app.cli", "structure", str(SEEDS / "000_5c1aadecc78db95a.txt"),
            "--out", str(out), "--only", "1,2,3,4,5,6", "--workers", "2", "--no-cache", *extra]


def test_kill_9_then_resume_gives_identical_records(tmp_path):
    """Real default model through the CLI: an uninterrupted run and a run killed with
    SIGKILL after its first checkpointed batch, then resumed, write the same records."""
    env = {**os.environ, "LLMSTRUCT_CACHE_DIR": str(tmp_path / "cache")}
    whole = tmp_path / "whole"
    subprocess.run(_structure_cmd(whole), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_structure_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = killed / ".checkpoints"
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if ckpt_dir.is_dir() and any(f.stat().st_size for f in ckpt_dir.iterdir()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "000_5c1aadecc78db95a.json").exists()  # nothing half-written
    done = subprocess.run(_structure_cmd(killed, "--resume"), check=True, env=env, capture_output=True, text=True)
    assert "model answers" in done.stdout
    a = json.loads((whole / "000_5c1aadecc78db95a.json").read_text())
    b = json.loads((killed / "000_5c1aadecc78db95a.json").read_text())
    assert a == b
    rows = [json.loads(x) for x in (killed / "run.jsonl").read_text().splitlines()]
    assert any(r["source"] == "checkpoint" for r in rows) and any(r["source"] == "model" for r in rows)
    assert all(r["valid"] for r in rows)
