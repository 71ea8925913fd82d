"""One place for configuration: defaults that work offline, overridden by a TOML file and env.

Precedence (lowest to highest): built-in defaults, ``llmstruct.toml`` in the working
directory (or the file named by ``LLMSTRUCT_CONFIG``), environment variables
``LLMSTRUCT_<FIELD>`` (upper case).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmstruct"


@dataclass(frozen=True)
class Settings:
    """Runtime settings; every field can be set as LLMSTRUCT_<NAME> in the environment."""

    cache_dir: Path = _default_cache()
    data_dir: Path = PROJECT_ROOT / "data"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    seeds_dir: Path = PROJECT_ROOT / "seeds"
    model: str = "qwen2.5-coder-0.5b"
    backend: str = "transformers"
    endpoint: str = ""
    chroma_url: str = ""
    max_file_mb: float = 50.0
    threads: int = 2
    host: str = "127.0.0.1"
    port: int = 7860
    auth: str = ""  # "user:password" asks for a login in the web app (set it when not on loopback)
    max_upload_mb: float = 20.0


def _coerce(kind: type, raw: object) -> object:
    if kind is Path or kind == "Path":
        return Path(str(raw)).expanduser()
    if kind is int or kind == "int":
        return int(raw)  # type: ignore[arg-type]
    if kind is float or kind == "float":
        return float(raw)  # type: ignore[arg-type]
    return str(raw)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from defaults, then the TOML file, then the environment."""
    settings = Settings()
    values: dict[str, object] = {}
    cfg = Path(os.environ.get("LLMSTRUCT_CONFIG", "llmstruct.toml"))
    if cfg.is_file():
        values.update(tomllib.loads(cfg.read_text(encoding="utf-8")))
    for f in fields(Settings):
        env = os.environ.get(f"LLMSTRUCT_{f.name.upper()}")
        if env is not None:
            values[f.name] = env
    known = {f.name: f.type for f in fields(Settings)}
    clean = {k: _coerce(known[k], v) for k, v in values.items() if k in known}
    return replace(settings, **clean)
