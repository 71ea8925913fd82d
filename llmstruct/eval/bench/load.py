"""Bounded load test of the chat API: N concurrent gradio_client sessions on loopback.

Each session is its own ``gradio_client.Client`` (its own session hash) and asks one
question through the streaming ``/chat`` endpoint; the test records the time to the first
streamed answer content, the time to the final answer, and every error. Before the
concurrent wave, on the warm app (one unmeasured question first), the wave's first few
questions are asked one at a time, so the same figures for a session alone, on the same
questions, come from the same run. Traffic goes only to a loopback URL (the app's; the app
itself may call a ``vllm serve`` endpoint); the number of sessions (at most 64) and the
time per session are bounded.

    llmstruct bench --load 20                                # starts the app on a free port
    llmstruct bench --load 20 --url http://127.0.0.1:7860    # a running app
    llmstruct bench --load 20 --endpoint http://gpu:8000     # the started app uses vllm serve

``python -m llmstruct.eval.bench.load [--url URL] [--sessions N]`` runs the same test
(settings from the environment and the config file, as the app reads them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

from llmstruct.config import Settings, checkout_root, load_settings
from llmstruct.errors import ConfigError, LlmstructError

# Distinct real questions on the five seed reports (from evals/gold/questions.yaml): the
# first eight are the original set (one of them, the 5G one, is meant to be refused).
QUESTIONS = (
    "临沭县2021年上半年一般公共预算收入是多少？",
    "临沭县通报中刘洪明作为责任领导的任务有几项？",
    "郯城县2022年社会消费品零售总额是多少？",
    "峄城区的智能化电动工具项目为什么没有推进？",
    "沂源县2023年计划新增多少个汽车充电桩？",
    "历城区2021年城镇登记失业率要控制在多少？",
    "县统计局在临沭县的通报中作为配合单位参与了哪些任务？",
    "郯城县2023年计划新建多少个5G基站？",
    "郯城县2023年城镇新增就业的目标是多少？",
    "峄城区第三季度时全区共有多少个重点项目？",
    "峄城区减税降费任务中，区医保局报告了什么进展？",
    "冠县2021年计划实施多少个重点项目，总投资多少？",
    "姜屯镇2019年实现生产总值多少？",
    "兰陵镇2019年计划引进多少个过亿元项目？",
    "临沭县上半年盘活土地完成了年度目标的百分之多少？",
    "临沭县上半年城镇新增就业距离全年目标还差多少人？",
    "峄城区1-9月一般公共预算收入完成多少？税收收入占比是多少？",
    "峄城区1-9月共收到各类转移支付资金多少？",
    "沂源县2023年计划改造的老旧片区平均每个片区涉及多少户？",
    "临沭县一般公共预算收入目标的第一责任单位是谁？上半年完成了全年目标的多少？",
    "郯城县2022年城镇新增就业实际完成多少？2023年的目标是多少？",
    "临沭县和峄城区2021年的地区生产总值增长目标分别是多少？",
    "在临沭县2021年的进展通报中，朱凤华作为责任领导负责几项任务？",
    "郯城县2023年生产总值的预期增长目标是多少？",
    "青岛市2021年生产总值的预期增长目标是多少？",
    "金乡县2021年计划改造多少个老旧小区？",
)
WARM_UP = "临沭县1-5月新增减税降费多少？"  # asked once, unmeasured, so the timed questions meet a warm app
MAX_SESSIONS = 64
MAX_SINGLE = 10
_WAITING = ("正在检索", "检索到", "系统正在准备")


class LoadTestError(LlmstructError, RuntimeError):
    """The app to load-test could not be started or did not get ready."""


@dataclass(frozen=True)
class SessionResult:
    question: str
    ok: bool
    first_seconds: float | None
    total_seconds: float
    refused: bool | None
    error: str = ""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def _is_loopback_host(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_loopback(url: str) -> None:
    """Refuse (ConfigError) to load-test anything but an http(s) URL on this machine."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or not _is_loopback_host(host):
        raise ConfigError(f"refusing to load-test a non-loopback address: {url!r} (use http://127.0.0.1:PORT)")


def check_endpoint(url: str) -> None:
    """A ``vllm serve`` base URL: http(s) with a host (ConfigError otherwise)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"bad --endpoint {url!r}: expected the vllm serve URL, e.g. http://127.0.0.1:8000")


def one_session(url: str, question: str, timeout: float) -> SessionResult:
    """One client session asking one question; times the stream."""
    from gradio_client import Client

    t0 = time.perf_counter()
    first = None
    last = None
    try:
        client = Client(url, verbose=False)
        job = client.submit(question, [], None, None, None, None, None, api_name="/chat")
        for out in job:
            chat = out[0] if isinstance(out, (list, tuple)) else out
            text = _last_assistant(chat)
            if first is None and text and not text.startswith(_WAITING):
                first = time.perf_counter() - t0
            last = out
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"no final answer after {timeout:.0f} s")
        final = job.outputs()[-1] if job.outputs() else last
        data = final[2] if isinstance(final, (list, tuple)) and len(final) > 2 else None
        if not isinstance(data, dict) or "answer" not in data:
            raise RuntimeError(f"no answer in the final output: {str(final)[:200]}")
        total = time.perf_counter() - t0
        return SessionResult(question, True, first if first is not None else total, total, bool(data.get("refused")))
    except Exception as exc:
        return SessionResult(question, False, first, time.perf_counter() - t0, None, f"{type(exc).__name__}: {exc}")


def _last_assistant(chat) -> str:
    if not isinstance(chat, list):
        return ""
    for m in reversed(chat):
        if isinstance(m, dict) and m.get("role") == "assistant":
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content)
            return str(content or "")
    return ""


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 2) if values else None


def summarize(results: Sequence[SessionResult], wall_seconds: float,
              single: Sequence[SessionResult] = ()) -> dict:
    """The figures of a wave of concurrent sessions (and of the single sessions before it):
    counts, nearest-rank p50/p95 of the time to first content and to the final answer over
    the sessions that got an answer, the wave's wall time; ``slowdown_p50``: the median,
    over the questions asked both alone and in the wave, of (final answer in the wave /
    alone)."""
    ok = [r for r in results if r.ok]
    totals = [r.total_seconds for r in ok]
    firsts = [r.first_seconds for r in ok if r.first_seconds is not None]
    s_ok = [r for r in single if r.ok]
    s_totals = [r.total_seconds for r in s_ok]
    s_firsts = [r.first_seconds for r in s_ok if r.first_seconds is not None]
    out: dict = {
        "sessions": len(results),
        "distinct_questions": len({r.question for r in results}),
        "errors": len(results) - len(ok),
        "refused": sum(1 for r in ok if r.refused),
        "first_content_p50": _p(firsts, 50),
        "first_content_p95": _p(firsts, 95),
        "latency_p50": _p(totals, 50),
        "latency_p95": _p(totals, 95),
        "wall_seconds": round(wall_seconds, 1),
        "single_sessions": len(single),
        "single_errors": len(single) - len(s_ok),
        "single_first_content_p50": _p(s_firsts, 50),
        "single_first_content_p95": _p(s_firsts, 95),
        "single_latency_p50": _p(s_totals, 50),
        "single_latency_p95": _p(s_totals, 95),
    }
    alone = {r.question: r.total_seconds for r in s_ok}
    ratios = [r.total_seconds / alone[r.question] for r in ok if alone.get(r.question)]
    out["slowdown_p50"] = round(percentile(ratios, 50), 2) if ratios else None
    return out


def wave(url: str, questions: Sequence[str], timeout: float = 900.0) -> tuple[list[SessionResult], float]:
    """All ``questions`` at once, one session each; the results and the wall time."""
    check_loopback(url)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, len(questions))) as pool:
        futures = [pool.submit(one_session, url, q, timeout) for q in questions]
        results = [f.result() for f in futures]
    return results, time.perf_counter() - t0


def pick_questions(n: int, questions: Sequence[str] = QUESTIONS) -> list[str]:
    """``n`` questions, distinct while the list lasts, then round again."""
    return [questions[i % len(questions)] for i in range(n)]


def run(url: str, sessions: int = 20, timeout: float = 900.0, questions: tuple[str, ...] = QUESTIONS) -> dict:
    """Run ``sessions`` concurrent sessions; return the summary (also the raw results)."""
    check_loopback(url)
    sessions = max(1, min(int(sessions), MAX_SESSIONS))
    results, wall = wave(url, pick_questions(sessions, questions), timeout)
    return {"url": url, **summarize(results, wall), "results": [asdict(r) for r in results]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(settings: Settings, endpoint: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a started app: every setting of this invocation as
    ``LLMSTRUCT_<FIELD>`` (so a ``--config`` file given to the CLI counts too), no login
    (it serves loopback only; start_app sets the address), and with ``endpoint`` the vllm
    backend on that ``vllm serve`` URL."""
    env = dict(os.environ if base is None else base)
    env.pop("LLMSTRUCT_CONFIG", None)
    for f in fields(settings):
        value = getattr(settings, f.name)
        env[f"LLMSTRUCT_{f.name.upper()}"] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    env.update(LLMSTRUCT_AUTH="", LLMSTRUCT_OPEN_BIND="0")
    if endpoint:
        env.update(LLMSTRUCT_BACKEND="vllm", LLMSTRUCT_ENDPOINT=endpoint)
    return env


def _app_command() -> tuple[list[str], Path | None]:
    """``python app.py`` in a checkout, else ``python -m llmstruct.app.cli serve`` (the same)."""
    root = checkout_root()
    if root is not None and (root / "app.py").is_file():
        return [sys.executable, str(root / "app.py")], root
    return [sys.executable, "-m", "llmstruct.app.cli", "serve"], None


def _log_tail(log_path: Path | None, lines: int = 5) -> str:
    if log_path is None or not log_path.is_file():
        return ""
    tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    return f" (log {log_path}: {' | '.join(t.strip() for t in tail)})" if tail else f" (log {log_path})"


def start_app(data_dir: Path | None = None, port: int | None = None, log_path: Path | None = None,
              env: Mapping[str, str] | None = None, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """Start the app on a free loopback port (``data_dir``: its own data folder; ``env``: the
    child's environment, default this one); wait until it serves HTTP."""
    import urllib.request

    port = port or free_port()
    child = dict(os.environ if env is None else env)
    child.update(LLMSTRUCT_PORT=str(port), LLMSTRUCT_HOST="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False",
                 HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    if data_dir is not None:
        child["LLMSTRUCT_DATA_DIR"] = str(data_dir)
    cmd, cwd = _app_command()
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=child, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]  # the child holds its own copy
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise LoadTestError(f"app exited with code {proc.returncode}{_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    stop_app(proc)
    raise LoadTestError(f"app did not start serving within {timeout:.0f} s{_log_tail(log_path)}")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def wait_ready(url: str, timeout: float = 900.0, proc: subprocess.Popen | None = None) -> dict:
    """Poll the app's ``/status`` endpoint until the model and corpus are ready (a busy
    app may time out a poll while it loads the model: that is retried, not an error);
    ``proc``: the started app, whose exit ends the wait."""
    from gradio_client import Client

    deadline = time.time() + timeout
    status: dict = {}
    client = None
    last_error = ""
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LoadTestError(f"app exited with code {proc.returncode} while preparing")
        try:
            client = client or Client(url, verbose=False)
            status = client.predict(api_name="/status")
            if status.get("ready") or status.get("error"):
                return status
        except Exception as exc:  # not serving yet, or a poll timed out under load
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(2.0)
    raise LoadTestError(f"app not ready after {timeout:.0f} s: {status or last_error}")


def load_benchmark(sessions: int, url: str | None = None, endpoint: str | None = None,
                   settings: Settings | None = None, single: int = 3, timeout: float = 900.0,
                   log: Callable[[str], None] = lambda m: None) -> dict:
    """The load test: start the app on a free loopback port with the configured corpus (or
    use the running app at ``url``), wait until it is ready, ask one unmeasured question,
    then the wave's first ``single`` questions one after another, then ``sessions``
    distinct questions (distinct up to len(QUESTIONS), then round again) at once. The
    summary (see summarize), plus every session's result under ``results``."""
    if url is not None and endpoint:
        raise ConfigError("--endpoint is for the app this test starts: a running app (--url) keeps its own")
    if url is not None:
        check_loopback(url)
    if endpoint:
        check_endpoint(endpoint)
    if not 1 <= sessions <= MAX_SESSIONS:
        raise ConfigError(f"--load {sessions}: use 1 to {MAX_SESSIONS} sessions")
    if not 1 <= single <= MAX_SINGLE:
        raise ConfigError(f"--single {single}: use 1 to {MAX_SINGLE} questions")
    asked = pick_questions(sessions)
    singles = pick_questions(single)
    proc = None
    work = None
    started = url is None
    startup = None
    ok = False
    try:
        t0 = time.perf_counter()
        if started:
            s = settings or load_settings()
            work = Path(tempfile.mkdtemp(prefix="llmstruct-load-"))
            log_path = work / "app.log"
            proc, url = start_app(log_path=log_path, env=app_env(s, endpoint))
            log(f"started the app at {url} (data {s.data_dir}{', vllm ' + endpoint if endpoint else ''}; "
                f"log {log_path}); waiting until it is ready…")
        assert url is not None
        try:
            status = wait_ready(url, timeout=max(timeout, 900.0), proc=proc)
        except LoadTestError as exc:
            raise LoadTestError(f"{exc}{_log_tail(log_path) if started else ''}") from None
        if status.get("error"):
            raise LoadTestError(f"the app failed to prepare: {status['error']}{_log_tail(log_path) if started else ''}")
        startup = time.perf_counter() - t0
        log(f"ready after {startup:.1f} s; warm-up question…")
        warm = one_session(url, WARM_UP, timeout)
        if not warm.ok:
            raise LoadTestError(f"the warm-up question failed: {warm.error}")
        single_results = []
        for n, q in enumerate(singles, start=1):
            single_results.append(one_session(url, q, timeout))
            log(f"single {n}/{len(singles)}: {single_results[-1].total_seconds:.1f} s")
        log(f"{sessions} concurrent sessions…")
        results, wall = wave(url, asked, timeout)
        ok = True
    finally:
        if proc is not None:
            stop_app(proc)
        if work is not None and ok:
            shutil.rmtree(work, ignore_errors=True)
    out = {"url": url, "started": started, "endpoint": endpoint or None,
           **summarize(results, wall, single_results),
           "warmup_seconds": round(warm.total_seconds, 2),
           "ready_seconds": round(startup, 1) if started else None,
           "results": [asdict(r) for r in results],
           "single_results": [asdict(r) for r in single_results]}
    return out


def brief(summary: dict) -> dict:
    """The summary without the per-session rows (what the commands print)."""
    return {k: v for k, v in summary.items() if k not in ("results", "single_results")}


def failures(summary: dict) -> list[str]:
    """One line per session that got no answer."""
    rows = [*summary.get("single_results", []), *summary.get("results", [])]
    return [f"{r['question']}: {r['error']}" for r in rows if not r["ok"]]


def main(argv: list[str] | None = None) -> int:
    """``python -m llmstruct.eval.bench.load``: the same test as ``llmstruct bench --load``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running app on loopback (default: start one on a free port)")
    ap.add_argument("--start", action="store_true", help="start the app (the default without --url)")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--endpoint", help="vllm serve URL for the started app")
    ap.add_argument("--single", type=int, default=3, help="questions asked alone first")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-session limit in seconds")
    args = ap.parse_args(argv)
    try:
        summary = load_benchmark(args.sessions, url=None if args.start else args.url, endpoint=args.endpoint,
                                 single=args.single, timeout=args.timeout,
                                 log=lambda m: print(m, file=sys.stderr))
    except LlmstructError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 64 if isinstance(exc, ConfigError) else 2
    print(json.dumps(brief(summary), ensure_ascii=False, indent=2))
    for line in failures(summary):
        print("error:", line, file=sys.stderr)
    return 0 if not failures(summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
