"""llama.cpp backend through llama-cpp-python (the optional ``llamacpp`` extra).

It runs the assembled GGUF directly (no conversion, ≈ 0.6 GB RAM) and constrains the
output with llama.cpp's own GBNF grammar, built from the same closed JSON schema as the
other backends. llama-cpp-python's schema converter allows one optional space after
every JSON token; that rule is replaced by the empty string, so the output is compact
JSON, the same language the other backends decode.

llama-cpp-python is source-only on PyPI; build it with ``scripts/setup_llamacpp.sh``
(portable CPU flags: a native AVX512/AMX build crashed on these machines). It is
imported only when the backend is built.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmstruct.models.base import Capabilities, GenerationResult, StructuredBackend
from llmstruct.models.provision import ModelError
from llmstruct.models.schema_json import compact_json_schema

Schemas = type[BaseModel] | Sequence[type[BaseModel]]

# llama-cpp-python's converter: `space ::= " "?` after every token; compact JSON has none.
_SPACE_RULE = re.compile(r'^space ::= .*$', re.MULTILINE)

INSTALL_HINT = "bash scripts/setup_llamacpp.sh (builds the `llamacpp` extra with portable CPU flags)"


def compact_gbnf(schema: type[BaseModel] | dict) -> str:
    """GBNF for ``schema``'s closed JSON schema, with no whitespace between JSON tokens."""
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError as e:
        raise ModelError(f"llama-cpp-python is not installed ({e}); install it with: {INSTALL_HINT}") from e
    gbnf = json_schema_to_gbnf(json.dumps(compact_json_schema(schema, "gbnf")))
    gbnf, n = _SPACE_RULE.subn('space ::= ""', gbnf)
    if n != 1:
        raise ModelError("llama-cpp-python's JSON-schema grammar has no single `space` rule; cannot make it compact")
    return gbnf


class LlamaCppBackend(StructuredBackend):
    """A GGUF model through llama-cpp-python, JSON constrained by a llama.cpp grammar.

    ``gguf_path``: the model file (e.g. ``provision.gguf_path('qwen2.5-coder-0.5b')``).
    ``threads``: llama.cpp threads for decoding and prompt processing.
    ``n_ctx``: context length (prompt + output); longer costs memory.

    Decoding is greedy. llama-cpp-python has no batching API for independent sequences,
    so a batch is a sequential loop over its prompts; every result's ``seconds`` is the
    wall time of the whole call, as for the other backends. Concurrent calls from several
    threads are serialised by a lock (one llama.cpp context).
    """

    name = "llamacpp"

    def __init__(self, gguf_path: str | Path, threads: int = 2, n_ctx: int = 4096, *, model_id: str | None = None):
        self.gguf_path = Path(gguf_path).expanduser()
        if not self.gguf_path.is_file():
            raise ModelError(f"GGUF file not found: {self.gguf_path}")
        try:
            import llama_cpp
        except ImportError as e:
            raise ModelError(f"backend 'llamacpp' needs llama-cpp-python ({e}); install it with: {INSTALL_HINT}") from e
        self._llama_cpp = llama_cpp
        self.model_id = model_id or (
            self.gguf_path.parent.name if self.gguf_path.name == "model.gguf" else self.gguf_path.stem
        )
        self.threads = int(threads)
        self.n_ctx = int(n_ctx)
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.gguf_path),
                n_ctx=self.n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                n_gpu_layers=0,
                verbose=False,
            )
        except Exception as e:
            raise ModelError(f"llama.cpp cannot load {self.gguf_path}: {type(e).__name__}: {e}") from e
        self.load_seconds = time.perf_counter() - t0
        self._template = self._chat_template()

    # ------------------------------------------------------------------ setup


    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(grammar="llama.cpp json-schema", threads=self.threads)

    def _chat_template(self):
        """The GGUF's own chat template (jinja), as llama-cpp-python's chat handler reads it."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.gguf_path} carries no chat template")
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        bos_id = self.llm.token_bos()
        bos = self.llm._model.token_get_text(bos_id) if bos_id >= 0 else ""
        return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)

    def _grammar(self, schema: type[BaseModel]):
        """The compiled llama.cpp grammar for ``schema``, cached per schema."""
        gbnf = compact_gbnf(schema)
        g = self._grammars.get(gbnf)
        if g is None:
            try:
                g = self._llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
            except Exception as e:
                raise ModelError(f"cannot build a llama.cpp grammar for {schema.__name__}: {e}") from e
            self._grammars[gbnf] = g
        return g

    # ------------------------------------------------------------------ interface

    def chat_prompt(self, system: str, user: str) -> str:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        return self._template(messages=messages).prompt

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def generate_json(self, prompts: list[str], schema: Schemas, max_new_tokens: int) -> list[GenerationResult]:
        """Constrained generation; ``schema`` is one model for all prompts or one per prompt."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings")
        if isinstance(schema, type):
            grammars = [self._grammar(schema)] * len(prompts)
        else:
            schemas = list(schema)
            if len(schemas) != len(prompts):
                raise ValueError("one schema per prompt")
            grammars = [self._grammar(s) for s in schemas]
        return self._generate(prompts, grammars, max_new_tokens)

    def generate_text(self, prompts: list[str], max_new_tokens: int) -> list[GenerationResult]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings")
        return self._generate(prompts, [None] * len(prompts), max_new_tokens)

    # ------------------------------------------------------------------ core

    def _generate(self, prompts: list[str], grammars: list[Any], max_new_tokens: int) -> list[GenerationResult]:
        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        outs: list[tuple[str, int, int, bool]] = []
        with self._lock:
            t0 = time.perf_counter()
            for prompt, grammar in zip(prompts, grammars):
                tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
                if len(tokens) + max_new_tokens > self.n_ctx:
                    raise ModelError(
                        f"prompt of {len(tokens)} tokens + {max_new_tokens} new tokens exceeds "
                        f"n_ctx={self.n_ctx} of {self.gguf_path}"
                    )
                out = self.llm.create_completion(
                    tokens,
                    max_tokens=int(max_new_tokens),
                    temperature=0.0,
                    top_k=1,
                    repeat_penalty=1.0,
                    grammar=grammar,
                )
                choice, usage = out["choices"][0], out["usage"]
                truncated = choice["finish_reason"] == "length"
                # llama-cpp-python leaves the end-of-generation token out of its count;
                # the interface counts it when one was produced.
                n_gen = int(usage["completion_tokens"]) + (0 if truncated else 1)
                outs.append((choice["text"], int(usage["prompt_tokens"]), n_gen, truncated))
            seconds = time.perf_counter() - t0
        return [GenerationResult(text, p, c, seconds, cut) for text, p, c, cut in outs]

    def __repr__(self) -> str:
        return f"LlamaCppBackend(gguf_path={str(self.gguf_path)!r}, threads={self.threads}, n_ctx={self.n_ctx})"
