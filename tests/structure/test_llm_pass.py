"""The model pass end to end: per-row grammars, cache, checkpoints, resume, retry, CLI.

Mechanics run on a tiny random-weight model (fast, and it babbles, so only the grammar
makes its output valid); the kill -9 resume test runs the real default model via the CLI.
The checkpoint file's own mechanics (cut lines, locking) need no model and are fast.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from helpers import SEEDS, tiny_random_backend

from llmstruct.errors import LlmstructError
from llmstruct.structure.batch import run_batch
from llmstruct.structure.labeling import build_job
from llmstruct.structure.llm_pass import Checkpoint, LabelCache, Output, checkpoint_path, label_structured
from llmstruct.structure.pipeline import structure_file

ONLY = {"1", "2", "3", "4", "5", "6", "7"}

# Every model test loads a model and compiles grammars: minutes on a busy 2-core machine.
slow = pytest.mark.slow


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


@slow
def test_items_of_different_shapes_share_a_batch(tiny, bulletin):
    jobs = [j for j in (build_job(bulletin.clean, it, tiny.model_id) for it in bulletin.records[0].items) if j.needs_model][:4]
    assert len({(len(j.asked_figures), len(j.asked_blocks)) for j in jobs}) > 1
    outs = tiny.generate_json([tiny.chat_prompt(j.system, j.user) for j in jobs], [j.schema for j in jobs], 200)
    for job, out in zip(jobs, outs):
        assert not out.truncated
        job.schema.model_validate_json(out.text)


@slow
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


@slow
def test_an_interrupted_run_resumes_to_identical_output(tiny, bulletin, tmp_path):
    whole = label_structured(bulletin, tiny, only=ONLY, batch_size=2)

    class Stop(Exception):
        pass

    def stop_after_first(n, tokens):
        raise Stop

    path = tmp_path / "ckpt.jsonl"
    with pytest.raises(Stop), Checkpoint(path, resume=False) as ckpt:
        label_structured(bulletin, tiny, checkpoint=ckpt, only=ONLY, batch_size=2, on_batch=stop_after_first)
    assert len(path.read_text().splitlines()) == 2  # the first batch was checkpointed
    counting = Counting(tiny)
    with Checkpoint(path, resume=True) as ckpt:
        resumed = label_structured(bulletin, counting, checkpoint=ckpt, only=ONLY, batch_size=2)
    n_model = sum(r.source == "model" for r in whole.items)
    assert counting.sent == n_model - 2
    assert sum(r.source == "checkpoint" for r in resumed.items) == 2
    assert _dump(resumed.records) == _dump(whole.records)


@slow
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


def _out(n: int) -> Output:
    return Output(f'{{"n": {n}}}', True, 0.1, 10, 5, 0, False)


def _line(key: str, n: int) -> str:
    return json.dumps({"key": key, "out": asdict(_out(n))}) + "\n"


def test_a_line_cut_by_a_kill_does_not_hide_later_appends(tmp_path):
    """Killed mid-line, resumed, appended, killed again: every finished entry is still read."""
    path = tmp_path / "c.jsonl"
    path.write_text(_line("a", 1) + _line("b", 2)[:25], encoding="utf-8")
    with Checkpoint(path, resume=True) as ckpt:
        assert set(ckpt.done) == {"a"}
        ckpt.add([("b", _out(2)), ("c", _out(3))])
    assert path.read_text(encoding="utf-8").endswith("\n")
    with Checkpoint(path, resume=True) as again:
        assert again.done == {"a": _out(1), "b": _out(2), "c": _out(3)}


def test_a_bad_middle_line_is_skipped_not_a_stop(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(_line("a", 1) + "{not json\n" + '{"key": "x"}\n' + _line("b", 2), encoding="utf-8")
    with Checkpoint(path, resume=True) as ckpt:
        assert ckpt.done == {"a": _out(1), "b": _out(2)}


def test_a_locked_checkpoint_is_neither_deleted_nor_shared(tmp_path):
    """A second run on the same output folder fails with one line and leaves the file alone."""
    path = tmp_path / "c.jsonl"
    content = _line("a", 1)
    path.write_text(content, encoding="utf-8")
    with open(path, "rb") as held:  # another open file description: flock conflicts in one process
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        for resume in (False, True):
            with pytest.raises(LlmstructError, match=r"another run is structuring it \(checkpoint .*c\.jsonl is in use\)"):
                Checkpoint(path, resume=resume)
        assert path.read_text(encoding="utf-8") == content
    with Checkpoint(path, resume=False) as stale:  # unlocked now: stale, so it starts afresh
        assert stale.done == {} and path.read_text(encoding="utf-8") == ""


def test_the_lock_is_released_on_close_and_remove(tmp_path):
    path = tmp_path / "c.jsonl"
    first = Checkpoint(path, resume=False)
    first.add([("a", _out(1))])
    first.close()
    second = Checkpoint(path, resume=True)
    assert second.done == {"a": _out(1)}
    second.remove()
    assert not path.exists()
    Checkpoint(path, resume=False).remove()


def test_a_batch_skips_a_file_another_run_holds_and_clears_old_temps(tmp_path):
    """The batch reports the held file in one line and writes nothing for it; stale temps go."""
    seed = SEEDS / "000_5c1aadecc78db95a.txt"
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".000_5c1aadecc78db95a.json.abcd1234.tmp"
    stale.write_text("half", encoding="utf-8")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    path = checkpoint_path(out, structure_file(seed))
    path.parent.mkdir()
    path.write_text(_line("a", 1), encoding="utf-8")
    with open(path, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_batch([seed], out, backend=object(), use_cache=False)  # never asked: the lock fails first
    assert result.failures == [f"{seed}: another run is structuring it (checkpoint {path} is in use)"]
    assert path.read_text(encoding="utf-8") == _line("a", 1)
    assert not stale.exists() and not list(out.glob("*.json"))


def _structure_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "llmstruct.app.cli", "structure", str(SEEDS / "000_5c1aadecc78db95a.txt"),
            "--out", str(out), "--only", "1,2,3,4,5,6", "--workers", "2", "--no-cache", *extra]


@slow
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
