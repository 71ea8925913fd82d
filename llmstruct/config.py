"""One place for configuration: defaults that work offline, overridden by a TOML file and env.

Precedence (lowest to highest): built-in defaults, ``llmstruct.toml`` in the working
directory (or the file named by ``LLMSTRUCT_CONFIG``), environment variables
``LLMSTRUCT_<FIELD>`` (upper case). Settings are read once, at the edge (the CLI, the web
app), and passed into the library: no library module reads them itself.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None for an installed wheel."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "seeds").is_dir() else None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmstruct"


def _default_data_dir() -> Path:
    root = checkout_root()
    if root is not None:
        return root / "data"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmstruct"


def _default_project_dir(name: str) -> Path:
    """``seeds/`` or ``evals/`` of the checkout; relative to the working directory otherwise."""
    root = checkout_root()
    return root / name if root is not None else Path(name)


DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_BACKEND = "transformers"
DEFAULT_THREADS = 2
DEFAULT_MAX_FILE_MB = 50.0


@dataclass(frozen=True)
class Settings:
    """Runtime settings; every field can be set as LLMSTRUCT_<NAME> in the environment."""

    cache_dir: Path = default_cache_dir()
    data_dir: Path = _default_data_dir()
    seeds_dir: Path = _default_project_dir("seeds")
    evals_dir: Path = _default_project_dir("evals")
    model: str = DEFAULT_MODEL
    backend: str = DEFAULT_BACKEND
    endpoint: str = ""
    chroma_url: str = ""
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    threads: int = DEFAULT_THREADS
    host: str = "127.0.0.1"
    port: int = 7860
    auth: str = ""  # "user:password" asks for a login in the web app (set it when not on loopback)
    open_bind: bool = False  # serve a non-loopback address without a login (only when that is meant)
    max_upload_mb: float = 20.0
    upload_memory_mb: float = 1024.0  # address-space limit of the child that reads and structures an upload
    upload_seconds: float = 300.0  # wall-clock limit of that child


def _coerce(kind: type, raw: object) -> object:
    if kind is Path or kind == "Path":
        return Path(str(raw)).expanduser()
    if kind is bool or kind == "bool":
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if kind is int or kind == "int":
        return int(raw)  # type: ignore[arg-type]
    if kind is float or kind == "float":
        return float(raw)  # type: ignore[arg-type]
    return str(raw)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, then the TOML file, then the environment (read now, not cached)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    cfg = Path(env.get("LLMSTRUCT_CONFIG", "llmstruct.toml"))
    if cfg.is_file():
        values.update(tomllib.loads(cfg.read_text(encoding="utf-8")))
    for f in fields(Settings):
        raw = env.get(f"LLMSTRUCT_{f.name.upper()}")
        if raw is not None:
            values[f.name] = raw
    known = {f.name: f.type for f in fields(Settings)}
    clean = {k: _coerce(known[k], v) for k, v in values.items() if k in known}
    return replace(Settings(), **clean)
