"""What tests in every folder share: the checkout's paths and a tiny random model.

Importable as ``helpers`` because pytest puts ``tests/`` on the path (``pythonpath`` in
pyproject.toml); fixtures live in the conftest files beside the tests that use them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots kept by CI (git-ignored)

# Two small bulletins in the seeds' layout, for store and search tests that need a fast index.
MINI = """沭政督字〔2022〕5号

临沭县人民政府办公室 关于2022年《政府工作报告》重点工作任务 进展情况的通报

各镇人民政府、街道办事处，县直各部门单位：
现将有关情况通报如下。

临沭县人民政府办公室

2022 年 7 月 10 日

2022 年《政府工作报告》重点工作任务 进展情况

一、产业发展

1. 全年新建5G基站80座，推进数字乡村建设。（责任领导：朱凤华；责任单位：县工信局；配合单位：县统计局）

进展情况：上半年已新建5G基站52座，完成全年任务的65%，数字乡村建设进展顺利。

2. 加快推进污水处理厂提标改造工程，年底前完成主体施工。（责任领导：陆永春；责任单位：县发改局）

进展情况：因资金未到位，污水处理厂提标改造工程进展滞后，暂时落后于计划进度。

3. 深化事业单位改革，着力提升行政效能。（责任领导：朱凤华；责任单位：县委编办；配合单位：县发展和改革局）

进展情况：事业单位改革已完成，并通过市委编办评估。
"""

OTHER = """郯城县人民政府办公室 关于2023年重点工作任务 进展情况的通报

2023 年重点工作任务 进展情况

1. 新增汽车充电桩300个，推动绿色智慧交通发展。（责任领导：王明；责任单位：县交通运输局）

进展情况：已建成汽车充电桩180个，正在推进中。

2. 实施高标准农田建设5万亩。（责任领导：李强；责任单位：县农业农村局；配合单位：县财政局）

进展情况：高标准农田建设已完成3.2万亩。

3. 改造提升老旧小区20个。（责任领导：王明；责任单位：县住建局）

进展情况：已开工老旧小区12个。
"""


def write_doc(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def tiny_random_backend(model_dir, grammar: str = "llguidance"):
    """A 2-layer random Qwen2 with the real tokenizer: it babbles, so only a grammar makes it
    produce JSON. For tests of mechanics (grammars, batching, caching), never of quality."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from llmstruct.models.transformers import TransformersBackend

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(cfg).to(torch.float32)
    return TransformersBackend.from_model(model, tok, threads=2, grammar=grammar, model_id="tiny-random")


def seed_text(source_file: str) -> str:
    """The text of a seed as the reader gives it: what citation offsets index into."""
    from llmstruct.ingest.source import read_source

    return read_source(SEEDS / source_file).text


@contextlib.contextmanager
def chroma_server_running(data: Path):
    """A `chroma run` subprocess on a free loopback port, stopped on exit; yields its URL."""
    import socket
    import subprocess
    import sys
    import time

    import httpx
    import pytest

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    log_path = data / "chroma-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(chroma), "run", "--path", str(data / "chroma-db"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
