"""``llmstruct bench --load N``: the summary figures, the options and the loopback guard
without a server; one real run against the started app (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmstruct.app import cli
from llmstruct.config import load_settings
from llmstruct.errors import ConfigError
from llmstruct.eval.bench import load as lb
from llmstruct.eval.bench.load import QUESTIONS, SessionResult, percentile, summarize

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
KEYS = {"sessions", "errors", "first_content_p50", "first_content_p95", "latency_p50", "latency_p95",
        "single_latency_p50", "single_first_content_p50", "wall_seconds"}


def _r(q: str, first: float | None, total: float, ok: bool = True, refused: bool = False) -> SessionResult:
    return SessionResult(q, ok, first, total, refused if ok else None, "" if ok else "TimeoutError: x")


def test_percentile_is_nearest_rank():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 0)) == (3.0, 5.0, 1.0)
    assert percentile([7.0], 95) == 7.0
    assert percentile(list(map(float, range(1, 21))), 95) == 19.0  # ceil(0.95 * 20) = 19th of 20


def test_summary_of_a_wave_and_the_single_sessions_before_it():
    wave = [_r("a", 1.0, 4.0), _r("b", 2.0, 6.0, refused=True), _r("c", 3.0, 8.0), _r("d", None, 30.0, ok=False)]
    single = [_r("x", 0.5, 2.0), _r("y", 0.7, 3.0), _r("z", 0.6, 2.5)]
    s = summarize(wave, 12.34, single)
    assert KEYS <= s.keys()
    assert (s["sessions"], s["distinct_questions"], s["errors"], s["refused"]) == (4, 4, 1, 1)
    assert (s["first_content_p50"], s["first_content_p95"]) == (2.0, 3.0)  # failed sessions are not timed
    assert (s["latency_p50"], s["latency_p95"], s["wall_seconds"]) == (6.0, 8.0, 12.3)
    assert (s["single_sessions"], s["single_errors"]) == (3, 0)
    assert (s["single_first_content_p50"], s["single_latency_p50"], s["single_latency_p95"]) == (0.6, 2.5, 3.0)
    assert s["slowdown_p50"] is None  # no question asked both alone and in the wave
    matched = summarize(wave, 12.34, [_r("a", 0.5, 2.0), _r("b", 1.0, 2.0), _r("c", 1.0, 1.0)])
    assert matched["slowdown_p50"] == 3.0  # ratios 2, 3, 8
    empty = summarize([_r("a", None, 1.0, ok=False)], 1.0)
    assert empty["latency_p50"] is None and empty["single_latency_p50"] is None and empty["errors"] == 1


def test_the_questions_are_distinct_real_gold_questions():
    gold = {q["question"] for q in yaml.safe_load((ROOT / "evals/gold/questions.yaml").read_text(encoding="utf-8"))}
    assert len(QUESTIONS) >= 20 and len(set(QUESTIONS)) == len(QUESTIONS)
    assert set(QUESTIONS) <= gold and lb.WARM_UP in gold and lb.WARM_UP not in QUESTIONS
    assert len(set(lb.pick_questions(len(QUESTIONS)))) == len(QUESTIONS)
    assert lb.pick_questions(3) == lb.pick_questions(20)[:3]  # the single ones are asked in the wave too


@pytest.mark.parametrize("url", ["http://10.0.0.5:7860", "http://example.org", "ftp://127.0.0.1:21", "127.0.0.1:7860"])
def test_only_loopback_is_load_tested(url):
    with pytest.raises(ConfigError, match="non-loopback"):
        lb.check_loopback(url)


def test_loopback_urls_pass_the_guard():
    for url in ("http://127.0.0.1:7860", "http://localhost:1", "http://[::1]:7860", "https://127.0.0.2"):
        lb.check_loopback(url)


def test_the_started_app_gets_this_invocations_settings(tmp_path):
    s = load_settings({"XDG_CONFIG_HOME": str(tmp_path / "none"), "LLMSTRUCT_DATA_DIR": str(tmp_path / "d"),
                       "LLMSTRUCT_THREADS": "1", "LLMSTRUCT_AUTH": "a:b", "LLMSTRUCT_MAX_UPLOAD_MB": "2.5"})
    env = lb.app_env(s, base={"LLMSTRUCT_CONFIG": "/nowhere.toml", "PATH": "/bin"})
    assert "LLMSTRUCT_CONFIG" not in env and env["PATH"] == "/bin"
    assert load_settings(env) == replace(s, auth="")  # loopback only: no login to get in the way
    env = lb.app_env(s, endpoint="http://127.0.0.1:8000", base={})
    child = load_settings(env)
    assert (child.backend, child.endpoint, child.data_dir) == ("vllm", "http://127.0.0.1:8000", tmp_path / "d")


def _fake(calls: list, failed: int = 0):
    def load_benchmark(sessions, **kw):
        calls.append((sessions, kw))
        wave = [_r(f"q{i}", 1.0, 2.0, ok=i >= failed) for i in range(sessions)]
        out = {"url": kw["url"] or "http://127.0.0.1:1", "started": kw["url"] is None,
               **summarize(wave, 3.0, [_r("s", 0.5, 1.0)])}
        return {**out, "results": [asdict(r) for r in wave], "single_results": []}
    return load_benchmark


def test_bench_load_options_and_output(monkeypatch):
    calls: list = []
    monkeypatch.setattr(cli, "load_benchmark", _fake(calls))
    result = runner.invoke(cli.app, ["bench", "--load", "5", "--url", "http://127.0.0.1:9", "--single", "2",
                                     "--timeout", "60"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert KEYS <= data.keys() and "results" not in data and data["sessions"] == 5
    (sessions, kw), = calls
    assert (sessions, kw["url"], kw["endpoint"]) == (5, "http://127.0.0.1:9", None)
    assert (kw["single"], kw["timeout"]) == (2, 60.0)
    calls.clear()
    assert runner.invoke(cli.app, ["bench", "--load", "2", "--endpoint", "http://127.0.0.1:8000"]).exit_code == 0
    assert calls[0][1]["endpoint"] == "http://127.0.0.1:8000" and calls[0][1]["url"] is None
    assert calls[0][1]["settings"] is not None  # the started app gets this invocation's settings


def test_bench_load_exits_1_when_a_session_fails(monkeypatch):
    monkeypatch.setattr(cli, "load_benchmark", _fake([], failed=1))
    result = runner.invoke(cli.app, ["bench", "--load", "3", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errors"] == 1 and "error: q0: TimeoutError" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--load", "3", "--url", "http://192.168.1.5:7860"], "refusing to load-test a non-loopback address"),
    (["--load", "3", "--url", "http://127.0.0.1:1", "--endpoint", "http://127.0.0.1:8000"], "--endpoint is for"),
    (["--load", "3", "--endpoint", "gpu:8000"], "bad --endpoint"),
    (["--endpoint", "http://127.0.0.1:8000"], "go with --load"),
    (["--url", "http://127.0.0.1:1"], "go with --load"),
    (["--load", "0"], "1 to 64 sessions"),
    (["--load", "65"], "1 to 64 sessions"),
    (["--load", "3", "--single", "0"], "1 to 10 questions"),
    (["--load", "3", "--model"], "--load runs on its own"),
])
def test_bench_load_usage_errors_exit_64_before_any_traffic(args, message, monkeypatch):
    monkeypatch.setattr(lb, "start_app", lambda *a, **k: pytest.fail("no app may be started"))
    monkeypatch.setattr(lb, "one_session", lambda *a, **k: pytest.fail("no request may be sent"))
    result = runner.invoke(cli.app, ["bench", *args])
    assert result.exit_code == 64 and message in result.stderr, result.output


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_bench_load_3_against_the_started_app(app_url):
    """The command as staff would run it, against the shared app: every figure, 0 errors."""
    proc = subprocess.run([sys.executable, "-m", "llmstruct.app.cli", "bench", "--load", "3", "--url", app_url,
                           "--single", "2", "--timeout", "900"], capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    print("bench --load 3:", json.dumps(data, ensure_ascii=False))
    assert KEYS <= data.keys()
    assert (data["sessions"], data["distinct_questions"], data["errors"]) == (3, 3, 0)
    assert (data["single_sessions"], data["single_errors"], data["started"]) == (2, 0, False)
    assert data["slowdown_p50"] > 0
    assert 0 < data["first_content_p50"] <= data["latency_p50"] <= data["latency_p95"]
    assert 0 < data["single_first_content_p50"] <= data["single_latency_p50"]
    assert data["wall_seconds"] >= data["latency_p95"] - 1
