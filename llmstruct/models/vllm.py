"""vLLM backends: a ``vllm serve`` endpoint over HTTP (the scale-out path) or an in-process ``vllm.LLM``.

:class:`VllmServerBackend` talks to vLLM's OpenAI-compatible API with plain httpx: many
workers can share one or more GPU servers, and this process needs neither torch nor
vllm. Prompts are already chat-formatted, so it posts them raw to ``/v1/completions``;
every prompt is its own request (so ``usage`` gives per-prompt token counts) and a
thread pool keeps up to ``concurrency`` of them in flight, which the server batches.

Structured outputs use vLLM's request field ``structured_outputs: {"json": schema}``
(the ``guided_json`` fields were removed in 0.12) with the same closed, compact schema
the transformers backend builds. vLLM takes the whitespace setting from the server, not
the request: serve with ``--structured-outputs-config
'{"backend":"guidance","disable_any_whitespace":true}'``; the schema also carries
llguidance's own compact options under ``x-guidance``, which the guidance backend obeys.

:class:`VllmOfflineBackend` runs ``vllm.LLM`` in this process when ``vllm`` is
importable (an optional install that pins its own torch; see ``scripts/setup_vllm.sh``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmstruct.models.base import Capabilities, GenerationResult, StructuredBackend
from llmstruct.models.provision import (
    PRESETS,
    ModelError,
    force_offline,
    get_preset,
    hf_dir,
    is_hf_dir,
)
from llmstruct.models.schema_json import compact_json_schema

# vLLM's guidance backend is llguidance: the schema gets llguidance's compact options.
_GRAMMAR = "llguidance"
STRUCTURED_OUTPUTS_CONFIG = {"backend": "guidance", "disable_any_whitespace": True}

Schemas = type[BaseModel] | Sequence[type[BaseModel]]


def _per_prompt(prompts: list[str], schema: Schemas | None) -> list[dict | None]:
    """One schema dict (or ``None`` for free text) per prompt."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings")
    if schema is None:
        return [None] * len(prompts)
    if isinstance(schema, type):
        d = compact_json_schema(schema, _GRAMMAR)
        return [d] * len(prompts)
    schemas = list(schema)
    if len(schemas) != len(prompts):
        raise ValueError("one schema per prompt")
    built: dict[int, dict] = {}
    for s in schemas:
        if id(s) not in built:
            built[id(s)] = compact_json_schema(s, _GRAMMAR)
    return [built[id(s)] for s in schemas]


def _model_id(path_or_name: str) -> str:
    """``.../models/<preset>/hf`` -> ``<preset>``; otherwise the folder or model name."""
    p = Path(path_or_name)
    return p.parent.name if p.name == "hf" else (p.name or path_or_name)


def _load_tokenizer(folder: Path):
    force_offline()
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise ModelError(f"reading the tokenizer in {folder} needs transformers ({e}); pip install -e '.[llm]'") from e
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:
        raise ModelError(f"cannot load the tokenizer in {folder}: {type(e).__name__}: {e}") from e


def _chatml(system: str, user: str) -> str:
    """Qwen's ChatML template (both presets use it), for when no tokenizer is at hand."""
    sys_part = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{sys_part}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


class VllmServerBackend(StructuredBackend):
    """Structured generation through a running ``vllm serve`` (OpenAI-compatible API).

    ``endpoint``: the server's base URL (``http://host:8000``; a trailing ``/v1`` is fine).
    ``model``: the served model name, or a preset / folder whose prepared folder is what the
    server loaded (``vllm serve <hf dir>`` serves it under its path); by default the first
    model the server lists.
    ``tokenizer``: a transformers folder or preset name whose tokenizer formats prompts
    and counts tokens locally; by default the served model's folder when it exists on
    this machine. Without one, prompts use Qwen's ChatML (checked once against the
    server's own template) and tokens are counted by the server's ``/tokenize``.
    ``concurrency``: requests in flight at once; the server batches them.
    ``timeout``: seconds per request (CPU servers are slow: keep it generous).

    Decoding is greedy (``temperature=0``). ``seconds`` of every result is the wall time
    of the whole call, as for the other backends.
    """

    name = "vllm"

    def __init__(
        self,
        endpoint: str,
        model: str | None = None,
        *,
        tokenizer: str | Path | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
    ):
        try:
            import httpx
        except ImportError as e:
            raise ModelError(f"the vllm server backend needs httpx ({e}); pip install httpx") from e
        if not endpoint:
            raise ModelError("the vllm backend needs an endpoint (--endpoint or setting 'endpoint'), e.g. http://127.0.0.1:8000")
        base = endpoint.strip().rstrip("/")
        if "://" not in base:
            base = "http://" + base
        self.endpoint = base.removesuffix("/v1")
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=self.endpoint,
            timeout=httpx.Timeout(self.timeout, connect=10.0),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            trust_env=False,  # a proxy from the environment must never see loopback traffic
        )

        served = [m["id"] for m in self._request("GET", "/v1/models").get("data", [])]
        if not served:
            raise ModelError(f"vLLM server at {self.endpoint} serves no model")
        self.served_model = self._pick_model(model, served)
        self.model_id = _model_id(self.served_model)
        self.tokenizer = self._local_tokenizer(tokenizer)
        if self.tokenizer is None:
            self._check_chatml()

    # ------------------------------------------------------------------ setup


    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batching=True, grammar="server")

    def _pick_model(self, model: str | Path | None, served: list[str]) -> str:
        """The served name for ``model``: a served name, or a preset or folder the server loaded."""
        if model is None:
            return served[0]
        if str(model) in served:
            return str(model)
        wanted = {Path(model).expanduser().resolve()}
        if str(model) in PRESETS:
            wanted.add(hf_dir(str(model)).resolve())
        for name in served:
            if Path(name).expanduser().resolve() in wanted:
                return name
        raise ModelError(
            f"vLLM server at {self.endpoint} does not serve {str(model)!r}; it serves {', '.join(served)} "
            "(pass that name as the model)"
        )

    def _local_tokenizer(self, tokenizer: str | Path | None):
        if tokenizer is not None:
            folder = Path(tokenizer).expanduser()
            if isinstance(tokenizer, str) and not folder.exists():
                folder = hf_dir(get_preset(tokenizer).name)
                if not is_hf_dir(folder):
                    raise ModelError(f"preset {tokenizer!r} is not prepared; run: llmstruct models prepare {tokenizer}")
            return _load_tokenizer(folder)
        folder = Path(self.served_model)
        if folder.is_dir() and ((folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()):
            return _load_tokenizer(folder)
        return None

    def _check_chatml(self) -> None:
        """Refuse a server whose chat template is not the ChatML used as fallback."""
        messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        theirs = self._request("POST", "/tokenize", {"model": self.served_model, "messages": messages})["tokens"]
        ours = self._request(
            "POST", "/tokenize", {"model": self.served_model, "prompt": _chatml("s", "u"), "add_special_tokens": False}
        )["tokens"]
        if theirs != ours:
            raise ModelError(
                f"the model served at {self.endpoint} does not use Qwen's ChatML template; "
                "pass tokenizer=<its transformers folder> so prompts use its own template"
            )

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, path: str, payload: dict | None = None) -> dict:
        url = self.endpoint + path
        httpx = self._httpx
        try:
            r = self._client.request(method, path, json=payload)
        except httpx.TimeoutException as e:
            raise ModelError(f"vLLM server at {url} did not answer within {self.timeout:g} s ({type(e).__name__})") from e
        except httpx.TransportError as e:
            raise ModelError(f"vLLM server at {url} is unreachable: {type(e).__name__}: {e or 'no answer'}") from e
        if r.status_code != 200:
            try:
                body = r.json()
                detail = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body
            except ValueError:
                detail = r.text[:300]
            raise ModelError(f"vLLM server at {url} answered HTTP {r.status_code}: {str(detail)[:300]}")
        try:
            return r.json()
        except ValueError as e:
            raise ModelError(f"vLLM server at {url} sent a reply that is not JSON: {r.text[:200]!r}") from e

    def _complete(self, prompt: str, schema: dict | None, max_new_tokens: int) -> tuple[str, int, int, bool]:
        payload: dict[str, Any] = {
            "model": self.served_model,
            "prompt": prompt,
            "max_tokens": int(max_new_tokens),
            "temperature": 0.0,
            "add_special_tokens": False,
            "skip_special_tokens": True,
        }
        if schema is not None:
            payload["structured_outputs"] = {"json": schema}
        body = self._request("POST", "/v1/completions", payload)
        try:
            choice = body["choices"][0]
            usage = body["usage"]
            return (
                choice["text"],
                int(usage["prompt_tokens"]),
                int(usage["completion_tokens"]),
                choice.get("finish_reason") == "length",
            )
        except (KeyError, IndexError, TypeError) as e:
            raise ModelError(f"vLLM server at {self.endpoint} sent an unexpected completion: {json.dumps(body)[:300]}") from e

    def _run(self, prompts: list[str], schemas: list[dict | None], max_new_tokens: int) -> list[GenerationResult]:
        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            outs = list(pool.map(lambda ps: self._complete(ps[0], ps[1], max_new_tokens), zip(prompts, schemas)))
        seconds = time.perf_counter() - t0
        return [GenerationResult(text, p, c, seconds, cut) for text, p, c, cut in outs]

    # ------------------------------------------------------------------ interface

    def generate_json(self, prompts: list[str], schema: Schemas, max_new_tokens: int) -> list[GenerationResult]:
        """Constrained generation; ``schema`` is one model for all prompts or one per prompt."""
        return self._run(prompts, _per_prompt(prompts, schema), max_new_tokens)

    def generate_text(self, prompts: list[str], max_new_tokens: int) -> list[GenerationResult]:
        return self._run(prompts, _per_prompt(prompts, None), max_new_tokens)

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer.encode(text, add_special_tokens=False))
        body = self._request("POST", "/tokenize", {"model": self.served_model, "prompt": text, "add_special_tokens": False})
        return int(body["count"])

    def chat_prompt(self, system: str, user: str) -> str:
        if self.tokenizer is None:
            return _chatml(system, user)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"VllmServerBackend(endpoint={self.endpoint!r}, model={self.served_model!r}, concurrency={self.concurrency})"


class VllmOfflineBackend(StructuredBackend):
    """``vllm.LLM`` in this process; needs ``vllm`` importable (its own venv, pinned torch).

    ``model_dir``: a transformers folder (see :func:`llmstruct.models.provision.prepare`).
    ``max_model_len``: context length to reserve KV cache for (small keeps CPU memory low).
    Other keyword arguments go to ``vllm.LLM``. The structured-output backend is
    ``guidance`` with no free whitespace, as for the server.

    A whole batch is one ``LLM.generate`` call, so vLLM schedules it together. Scripts that
    build it need an ``if __name__ == "__main__":`` guard: vLLM spawns worker processes.
    """

    name = "vllm"

    def __init__(self, model_dir: str | Path, *, max_model_len: int = 4096, **llm_kwargs: Any):
        force_offline()
        try:
            from vllm import LLM, SamplingParams
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError as e:
            raise ModelError(
                f"offline vLLM needs the vllm package ({e}); install it in its own venv with "
                "scripts/setup_vllm.sh, or pass an endpoint of a running `vllm serve`"
            ) from e
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise ModelError(f"{self.model_dir} is not a transformers model folder")
        self.model_id = _model_id(str(self.model_dir))
        self._sampling = SamplingParams
        self._structured = StructuredOutputsParams
        llm_kwargs.setdefault("structured_outputs_config", dict(STRUCTURED_OUTPUTS_CONFIG))
        t0 = time.perf_counter()
        try:
            self.llm = LLM(model=str(self.model_dir), max_model_len=int(max_model_len), **llm_kwargs)
        except Exception as e:
            raise ModelError(f"vLLM cannot load {self.model_dir}: {type(e).__name__}: {e}") from e
        self.load_seconds = time.perf_counter() - t0
        self.tokenizer = self.llm.get_tokenizer()


    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batching=True, grammar="guidance")

    def _run(self, prompts: list[str], schemas: list[dict | None], max_new_tokens: int) -> list[GenerationResult]:
        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        params = [
            self._sampling(
                temperature=0.0,
                max_tokens=int(max_new_tokens),
                structured_outputs=None if s is None else self._structured(json=s),
            )
            for s in schemas
        ]
        t0 = time.perf_counter()
        outs = self.llm.generate(
            [{"prompt_token_ids": self.tokenizer.encode(p, add_special_tokens=False)} for p in prompts],
            sampling_params=params,
            use_tqdm=False,
        )
        seconds = time.perf_counter() - t0
        results = []
        for o in outs:
            c = o.outputs[0]
            results.append(
                GenerationResult(c.text, len(o.prompt_token_ids), len(c.token_ids), seconds, c.finish_reason == "length")
            )
        return results

    def generate_json(self, prompts: list[str], schema: Schemas, max_new_tokens: int) -> list[GenerationResult]:
        """Constrained generation; ``schema`` is one model for all prompts or one per prompt."""
        return self._run(prompts, _per_prompt(prompts, schema), max_new_tokens)

    def generate_text(self, prompts: list[str], max_new_tokens: int) -> list[GenerationResult]:
        return self._run(prompts, _per_prompt(prompts, None), max_new_tokens)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, system: str, user: str) -> str:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def __repr__(self) -> str:
        return f"VllmOfflineBackend(model_dir={str(self.model_dir)!r})"
