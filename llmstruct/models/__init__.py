"""Model backends and offline model provisioning.

Heavy libraries (torch, transformers, outlines) are imported only when a backend is
built, so ``import llmstruct.models`` stays cheap.
"""

from __future__ import annotations

import os

# Never reach a model hub from this package: huggingface_hub and transformers read these
# at import time, so set them before anything below can import them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from llmstruct.models.base import GenerationResult, StructuredBackend  # noqa: E402

BACKENDS = ("transformers", "llamacpp", "vllm")

__all__ = ["BACKENDS", "GenerationResult", "StructuredBackend", "get_backend"]


def get_backend(name: str | None = None, **kw) -> StructuredBackend:
    """Build a backend by name.

    ``transformers`` takes ``model_dir`` (or ``model``: a preset name, a ``.gguf`` file or a
    transformers folder, prepared offline via :func:`llmstruct.models.provision.prepare`),
    plus ``threads``, ``grammar`` and ``dtype``. With neither, the configured model
    (``llmstruct.config``) is prepared. ``llamacpp`` and ``vllm`` are not implemented yet.
    """
    from llmstruct.models.provision import ModelError

    if name is None:
        from llmstruct.config import get_settings

        name = get_settings().backend
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key in ("transformers", "hf"):
        from llmstruct.models.provision import prepare
        from llmstruct.models.transformers import TransformersBackend

        model_dir = kw.pop("model_dir", None)
        model = kw.pop("model", None)
        cache_dir = kw.pop("cache_dir", None)
        if model_dir is None:
            model_dir = prepare(model, cache_dir)
        if "threads" not in kw:
            from llmstruct.config import get_settings

            kw["threads"] = get_settings().threads
        return TransformersBackend(model_dir, **kw)
    if key in ("llamacpp", "llama.cpp", "llamacpppython"):
        raise ModelError(
            "backend 'llamacpp' is not implemented yet (and llama-cpp-python is not installed); "
            "use backend 'transformers'"
        )
    if key == "vllm":
        raise ModelError(
            "backend 'vllm' is not implemented yet (vllm is not installed and stays out of the "
            "default dependencies); use backend 'transformers'"
        )
    raise ModelError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
