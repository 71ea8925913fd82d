"""llama.cpp backend: the real default GGUF through llama-cpp-python, under llama.cpp's own
JSON-schema grammar. Runs when llama_cpp is importable (scripts/setup_llamacpp.sh builds it);
skipped with the reason otherwise."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import SEEDS

from llmstruct.models import StructuredBackend, get_backend
from llmstruct.models.provision import ModelError
from llmstruct.structure.labeling import ApplyReport, apply_labels, build_job, parse_labels
from llmstruct.structure.pipeline import structure_file

HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(
    not HAVE_LLAMA_CPP, reason="llama-cpp-python is not installed (bash scripts/setup_llamacpp.sh builds it, 5-8 min)"
)


# ----------------------------------------------------------------------------- fast


def test_missing_gguf_is_one_clear_line(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelError, match="GGUF file not found") as e:
        get_backend("llamacpp", gguf_path=missing)
    assert str(missing) in str(e.value)
    with pytest.raises(ModelError, match="preset name or a .gguf file"):
        get_backend("llamacpp", model=str(tmp_path))


@pytest.mark.skipif(HAVE_LLAMA_CPP, reason="llama-cpp-python is installed here")
def test_missing_llama_cpp_names_the_setup_script(tmp_path):
    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="setup_llamacpp.sh"):
        get_backend("llamacpp", gguf_path=fake)


@needs_llama_cpp
def test_grammar_is_compact():
    from pydantic import BaseModel, Field

    from llmstruct.models.llamacpp import compact_gbnf

    class T(BaseModel):
        name: str = Field(max_length=5)
        tags: list[str] = Field(max_length=2)

    g = compact_gbnf(T)
    assert 'space ::= ""' in g and '" "?' not in g


# ----------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def backend():
    if not HAVE_LLAMA_CPP:
        pytest.skip("llama-cpp-python is not installed (bash scripts/setup_llamacpp.sh builds it, 5-8 min)")
    # One thread: llama.cpp's spinning thread barrier collapses (≈ 10× slower measured) when
    # the machine's 2 cores are shared with other jobs; one thread never waits on another.
    return get_backend("llamacpp", model="qwen2.5-coder-0.5b", threads=1, n_ctx=4096)


@pytest.mark.slow
@pytest.mark.model
def test_real_model_labels_seed_items(backend):
    """Up to two open items from every seed, each with its own grammar; every output valid."""
    assert isinstance(backend, StructuredBackend)
    assert backend.name == "llamacpp" and backend.model_id == "qwen2.5-coder-0.5b"
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

    report = ApplyReport()
    for (result, job), prompt, out in zip(jobs, prompts, outs):
        assert not out.truncated, out
        assert out.prompt_tokens == backend.count_tokens(prompt)
        assert out.completion_tokens > 0 and out.seconds > 0
        assert out.text == json.dumps(json.loads(out.text), ensure_ascii=False, separators=(",", ":")), out.text
        item = apply_labels(result.clean, job, parse_labels(job, out.text), report)
        type(item).model_validate_json(item.model_dump_json())
        original = result.source.text
        for ind in item.targets + [i for p in item.progress for i in p.indicators]:
            assert original[ind.evidence.start:ind.evidence.end] == ind.evidence.text
    assert report.indicators == report.indicators_grounded
    gen = sum(o.completion_tokens for o in outs)
    print(f"\nllamacpp: {len(outs)}/{len(outs)} valid, {gen} completion tokens in {outs[0].seconds:.1f} s "
          f"= {gen / outs[0].seconds:.1f} tokens/s (prompt processing included)")


@pytest.mark.slow
@pytest.mark.model
def test_real_model_truncation_is_reported(backend):
    prompt = backend.chat_prompt("只输出JSON。", "把下面的任务写成JSON：全年新增城镇就业5000人以上，县人社局负责。")
    (r,) = backend.generate_text([prompt], max_new_tokens=5)
    assert r.truncated and r.completion_tokens == 5
