"""Bounded load test of the chat API: N concurrent gradio_client sessions on loopback.

Each session is its own ``gradio_client.Client`` (its own session hash) and asks one
question through the streaming ``/chat`` endpoint; the test records the time to the first
streamed answer content, the time to the final answer, and every error. Traffic goes only
to the given loopback URL; the number of requests and the time are bounded.

    python -m llmstruct.loadtest --url http://127.0.0.1:7860 --sessions 20
    python -m llmstruct.loadtest --start --sessions 20      # starts the app on a free port
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

QUESTIONS = (
    "临沭县2021年上半年一般公共预算收入是多少？",
    "临沭县通报中刘洪明作为责任领导的任务有几项？",
    "郯城县2022年社会消费品零售总额是多少？",
    "峄城区的智能化电动工具项目为什么没有推进？",
    "沂源县2023年计划新增多少个汽车充电桩？",
    "历城区2021年城镇登记失业率要控制在多少？",
    "县统计局在临沭县的通报中作为配合单位参与了哪些任务？",
    "郯城县2023年计划新建多少个5G基站？",
)
_WAITING = ("正在检索", "检索到", "系统正在准备")


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


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not (host in ("localhost", "::1") or host.startswith("127.")):
        raise SystemExit(f"refusing to load-test a non-loopback address: {host}")


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


def run(url: str, sessions: int = 20, timeout: float = 900.0, questions: tuple[str, ...] = QUESTIONS) -> dict:
    """Run ``sessions`` concurrent sessions; return the summary (also the raw results)."""
    _check_loopback(url)
    sessions = max(1, min(int(sessions), 64))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        futures = [pool.submit(one_session, url, questions[i % len(questions)], timeout) for i in range(sessions)]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    ok = [r for r in results if r.ok]
    totals = [r.total_seconds for r in ok]
    firsts = [r.first_seconds for r in ok if r.first_seconds is not None]
    return {
        "url": url,
        "sessions": sessions,
        "errors": len(results) - len(ok),
        "wall_seconds": round(wall, 1),
        "latency_p50": round(percentile(totals, 50), 2) if totals else None,
        "latency_p95": round(percentile(totals, 95), 2) if totals else None,
        "first_content_p50": round(percentile(firsts, 50), 2) if firsts else None,
        "first_content_p95": round(percentile(firsts, 95), 2) if firsts else None,
        "refused": sum(1 for r in ok if r.refused),
        "results": [asdict(r) for r in results],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(data_dir: Path, port: int | None = None, log_path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``app.py`` on a free loopback port with its own data dir; wait until it serves."""
    import urllib.request

    port = port or free_port()
    env = dict(os.environ, LLMSTRUCT_PORT=str(port), LLMSTRUCT_HOST="127.0.0.1", LLMSTRUCT_DATA_DIR=str(data_dir),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    root = Path(__file__).resolve().parents[3]  # the checkout: app.py sits beside llmstruct/
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, str(root / "app.py")], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("app did not start serving within 180 s")


def wait_ready(url: str, timeout: float = 900.0) -> dict:
    """Poll the app's ``/status`` endpoint until the model and corpus are ready (a busy
    app may time out a poll while it loads the model: that is retried, not an error)."""
    from gradio_client import Client

    deadline = time.time() + timeout
    status: dict = {}
    client = None
    last_error = ""
    while time.time() < deadline:
        try:
            client = client or Client(url, verbose=False)
            status = client.predict(api_name="/status")
            if status.get("ready") or status.get("error"):
                return status
        except Exception as exc:  # not serving yet, or a poll timed out under load
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(2.0)
    raise TimeoutError(f"app not ready after {timeout:.0f} s: {status or last_error}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running app on loopback")
    ap.add_argument("--start", action="store_true", help="start app.py on a free port with a temporary data dir")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=900.0, help="per-session limit in seconds")
    args = ap.parse_args(argv)
    proc = None
    url = args.url
    if args.start or not url:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="llmstruct-load-"))
        proc, url = start_app(tmp / "data", log_path=tmp / "app.log")
    try:
        status = wait_ready(url)
        if status.get("error"):
            print(json.dumps(status, ensure_ascii=False))
            return 2
        summary = run(url, args.sessions, args.timeout)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    brief = {k: v for k, v in summary.items() if k != "results"}
    print(json.dumps(brief, ensure_ascii=False, indent=2))
    for r in summary["results"]:
        if not r["ok"]:
            print("error:", r["question"], r["error"], file=sys.stderr)
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
