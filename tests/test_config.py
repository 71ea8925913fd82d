"""Where settings come from: an explicit file or the user's config dir, never the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmstruct.app.cli import EXIT_USAGE, app
from llmstruct.config import Settings, load_settings, user_config_path
from llmstruct.errors import ConfigError


def _user_file(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "xdg" / "llmstruct" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(text, encoding="utf-8")
    return cfg


def test_a_llmstruct_toml_in_the_working_directory_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "llmstruct.toml").write_text('host = "0.0.0.0"\nendpoint = "http://evil:8000"\n', encoding="utf-8")
    (tmp_path / "xdg").mkdir()
    monkeypatch.chdir(tmp_path)
    s = load_settings({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert (s.host, s.endpoint) == (Settings().host, "")


def test_a_relative_xdg_config_home_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert user_config_path({"XDG_CONFIG_HOME": "cfg"}) == Path.home() / ".config" / "llmstruct" / "config.toml"


def test_the_user_config_file_is_read(tmp_path: Path) -> None:
    _user_file(tmp_path, 'host = "10.0.0.2"\nport = 8080\nmax_file_mb = 5\n')
    s = load_settings({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert (s.host, s.port, s.max_file_mb) == ("10.0.0.2", 8080, 5.0)


def test_an_explicit_file_is_read_instead_of_the_user_file(tmp_path: Path) -> None:
    _user_file(tmp_path, 'host = "10.0.0.2"\n')
    explicit = tmp_path / "mine.toml"
    explicit.write_text('model = "other"\n', encoding="utf-8")
    s = load_settings({"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "LLMSTRUCT_CONFIG": str(explicit)})
    assert (s.model, s.host) == ("other", Settings().host)


def test_a_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_settings({"LLMSTRUCT_CONFIG": str(missing)})
    with pytest.raises(ConfigError, match="nope.toml"):
        load_settings({}, config=missing)


def test_invalid_toml_is_an_error_on_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("host = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML") as info:
        load_settings({"LLMSTRUCT_CONFIG": str(bad)})
    assert "\n" not in str(info.value)


def test_an_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    _user_file(tmp_path, 'max_file_md = 5\n')
    with pytest.raises(ConfigError, match="unknown key 'max_file_md'"):
        load_settings({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})


def test_a_wrong_typed_value_is_an_error_naming_the_key(tmp_path: Path) -> None:
    _user_file(tmp_path, 'port = "http"\n')
    with pytest.raises(ConfigError, match="config.toml: port:"):
        load_settings({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    with pytest.raises(ConfigError, match="LLMSTRUCT_THREADS: threads:"):
        load_settings({"XDG_CONFIG_HOME": str(tmp_path / "none"), "LLMSTRUCT_THREADS": "many"})


def test_env_beats_the_file(tmp_path: Path) -> None:
    _user_file(tmp_path, 'host = "10.0.0.2"\nport = 8080\n')
    s = load_settings({"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "LLMSTRUCT_PORT": "9000"})
    assert (s.host, s.port) == ("10.0.0.2", 9000)


def test_the_cli_config_option_and_its_error(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "nope.toml"
    result = runner.invoke(app, ["--config", str(missing), "schema"])
    assert result.exit_code == EXIT_USAGE
    assert "nope.toml: config file not found" in result.output
    good = tmp_path / "good.toml"
    good.write_text('threads = 1\n', encoding="utf-8")
    assert runner.invoke(app, ["--config", str(good), "schema"]).exit_code == 0
