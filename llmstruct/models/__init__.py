"""Model backends and offline model provisioning.

Heavy libraries (torch, transformers, outlines, llama_cpp, vllm) are imported only when a
backend is built, so ``import llmstruct.models`` stays cheap.
"""

from __future__ import annotations

import os

# Never reach a model hub from this package: huggingface_hub and transformers read these
# at import time, so set them before anything can import them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from llmstruct.config import DEFAULT_BACKEND, DEFAULT_MODEL, DEFAULT_THREADS  # noqa: E402
from llmstruct.models.base import Capabilities, GenerationResult, StructuredBackend  # noqa: E402
from llmstruct.models.llamacpp import LlamaCppBackend  # noqa: E402
from llmstruct.models.provision import PRESETS, ModelError, assemble, gguf_path, prepare  # noqa: E402
from llmstruct.models.transformers import TransformersBackend  # noqa: E402
from llmstruct.models.vllm import VllmOfflineBackend, VllmServerBackend  # noqa: E402

BACKENDS = ("transformers", "llamacpp", "vllm")

__all__ = ["BACKENDS", "Capabilities", "GenerationResult", "StructuredBackend", "get_backend"]


def get_backend(name: str = DEFAULT_BACKEND, *, model: str | None = None, threads: int = DEFAULT_THREADS,
                endpoint: str = "", cache_dir=None, **kw) -> StructuredBackend:
    """Build a backend by name.

    ``transformers`` takes ``model_dir`` (or ``model``: a preset name, a ``.gguf`` file or a
    transformers folder, prepared offline via :func:`llmstruct.models.provision.prepare`),
    plus ``grammar`` and ``dtype``. With neither, the default model is prepared.

    ``llamacpp`` takes ``model`` (a preset name, whose checked ``model.gguf`` is used, or a
    local ``.gguf`` file) or ``gguf_path``, plus ``threads`` and ``n_ctx``.

    ``vllm`` with ``endpoint`` talks to a running ``vllm
    serve``; ``model`` then picks the served model (a served name, or a preset whose
    prepared folder is what the server loaded), plus ``concurrency``, ``timeout`` and
    ``tokenizer``. Without an endpoint it runs ``vllm.LLM`` in this process, which needs
    the vllm package; ``model`` is prepared as for ``transformers``.
    """
    key = name.strip().lower().replace("-", "").replace("_", "").replace(".", "")
    if key in ("transformers", "hf"):
        model_dir = kw.pop("model_dir", None)
        if model_dir is None:
            model_dir = prepare(model, cache_dir)
        return TransformersBackend(model_dir, threads=threads, **kw)
    if key in ("llamacpp", "llamacpppython"):
        path = kw.pop("gguf_path", None) or _gguf_for(model or DEFAULT_MODEL, cache_dir)
        return LlamaCppBackend(path, threads=threads, **kw)
    if key == "vllm":
        if endpoint:
            return VllmServerBackend(endpoint, model, **kw)
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ModelError(
                "backend 'vllm' needs an endpoint of a running `vllm serve` (--endpoint URL or "
                "LLMSTRUCT_ENDPOINT), or the vllm package in this environment for offline use"
            )

        return VllmOfflineBackend(kw.pop("model_dir", None) or prepare(model, cache_dir), **kw)
    raise ModelError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")


def _gguf_for(model: str, cache_dir=None):
    """A preset's assembled and checked GGUF, or a local ``.gguf`` file as given."""
    from pathlib import Path

    if model in PRESETS:
        path = gguf_path(model, cache_dir)
        return path if path.is_file() else assemble(model, cache_dir)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    raise ModelError(f"backend 'llamacpp' needs a preset name or a .gguf file, not {model!r}")
