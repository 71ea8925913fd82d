"""One place for configuration: defaults that work offline, overridden by a TOML file and env.

Precedence (lowest to highest): built-in defaults, one TOML file, environment variables
``LLMSTRUCT_<FIELD>`` (upper case). The web app's address also honours Gradio's own
variables, as a layer between the file and ``LLMSTRUCT_*``: ``GRADIO_SERVER_NAME`` sets
``host`` and ``GRADIO_SERVER_PORT`` sets ``port`` unless ``LLMSTRUCT_HOST`` /
``LLMSTRUCT_PORT`` are set (a blank Gradio variable counts as unset); an address given as
an argument (``llmstruct serve --host/--port``) beats them all. The file is the one named
explicitly (``--config PATH``, else ``LLMSTRUCT_CONFIG``), else
``$XDG_CONFIG_HOME/llmstruct/config.toml`` (default ``~/.config/llmstruct/config.toml``) if
it exists. Nothing is read from the working directory, so running in an untrusted folder
cannot change the host, endpoint or limits. An explicit file that is missing, any file that
is not valid TOML, an unknown key or a value of the wrong type is a ConfigError, so a typo
is never silently ignored. Settings are read once, at the edge (the CLI, the web app), and
passed into the library: no library module reads them itself.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from llmstruct.errors import ConfigError

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
    max_batch: int = 8  # chat answers the local model decodes together; more wait their turn
    chat_sessions: int = 16  # chat questions the web app works on at once (the rest queue in Gradio)
    host: str = "127.0.0.1"
    port: int = 7860
    auth: str = ""  # "user:password" asks for a login in the web app (set it when not on loopback)
    open_bind: bool = False  # serve a non-loopback address without a login (only when that is meant)
    max_upload_mb: float = 20.0
    upload_memory_mb: float = 1024.0  # address-space limit of the child that reads and structures an upload
    upload_seconds: float = 300.0  # wall-clock limit of that child


def _coerce(kind: type | str, raw: object) -> object:
    if isinstance(raw, (dict, list)):
        raise TypeError("expected a single value, not a table or list")
    if kind is Path or kind == "Path":
        return Path(str(raw)).expanduser()
    if kind is bool or kind == "bool":
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if kind is int or kind == "int":
        if isinstance(raw, (bool, float)):
            raise TypeError(f"expected an integer, got {raw!r}")
        return int(raw)  # type: ignore[arg-type]
    if kind is float or kind == "float":
        if isinstance(raw, bool):
            raise TypeError(f"expected a number, got {raw!r}")
        return float(raw)  # type: ignore[arg-type]
    return str(raw)


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The per-user file; a relative or empty XDG_CONFIG_HOME is ignored as the XDG spec says,
    since it would point into the working directory."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "llmstruct" / "config.toml"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read_file(cfg: Path) -> dict[str, object]:
    """The file's top-level keys, each one known to Settings."""
    try:
        data = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{cfg}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg}: cannot read config file: {_one_line(str(exc))}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg}: not valid TOML: {_one_line(str(exc))}") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(k for k in data if k not in known)
    if unknown:
        raise ConfigError(f"{cfg}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return data


# Gradio's environment variables for the address it serves on, read as our settings so that
# a deployment that sets them (containers, Spaces) is not silently overridden by our defaults.
GRADIO_ENV = {"host": "GRADIO_SERVER_NAME", "port": "GRADIO_SERVER_PORT"}


def load_settings(env: Mapping[str, str] | None = None, config: Path | None = None) -> Settings:
    """Settings from defaults, then the TOML file, then the environment (read now, not cached):
    ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` first, then ``LLMSTRUCT_<FIELD>``.

    ``config`` (the CLI's ``--config``) wins over ``LLMSTRUCT_CONFIG``; either must exist.
    """
    env = os.environ if env is None else env
    explicit = config if config is not None else (Path(env["LLMSTRUCT_CONFIG"]).expanduser()
                                                  if env.get("LLMSTRUCT_CONFIG") else None)
    cfg = explicit if explicit is not None else user_config_path(env)
    sources: dict[str, str] = {}
    values: dict[str, object] = {}
    if explicit is not None or cfg.is_file():
        for key, value in _read_file(cfg).items():
            values[key], sources[key] = value, str(cfg)
    for key, name in GRADIO_ENV.items():  # Gradio's own names: above the file, below LLMSTRUCT_*
        raw = env.get(name)
        if raw is not None and raw.strip():
            values[key], sources[key] = raw.strip(), name
    for f in fields(Settings):
        name = f"LLMSTRUCT_{f.name.upper()}"
        raw = env.get(name)
        if raw is not None:
            values[f.name], sources[f.name] = raw, name
    kinds = {f.name: f.type for f in fields(Settings)}
    clean: dict[str, object] = {}
    for key, value in values.items():
        try:
            clean[key] = _coerce(kinds[key], value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{sources[key]}: {key}: {_one_line(str(exc))}") from None
    return replace(Settings(), **clean)


def serve_address(settings: Settings, host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """Where the web app binds: an explicit ``host`` / ``port`` (the CLI's ``serve --host/--port``),
    else the settings, which already rank ``LLMSTRUCT_HOST/PORT`` > ``GRADIO_SERVER_NAME/PORT``
    > the config file > 127.0.0.1:7860. The login check applies to the host returned here,
    whichever of them set it."""
    return (host or settings.host, port or settings.port)
