"""Where settings come from: an explicit file or the user's config dir, never the working
directory; the web app's address: an argument > LLMSTRUCT_HOST/PORT > GRADIO_SERVER_NAME/PORT
> the config file > 127.0.0.1:7860, with the login check whichever of them set the host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmstruct.app.cli import EXIT_USAGE, app
from llmstruct.config import Settings, load_settings, serve_address, user_config_path
from llmstruct.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


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


# ----------------------------------------------------------------- the web app's address
def _gradio_env(tmp_path: Path, file_text: str | None = None, **env: str) -> dict[str, str]:
    """An environment whose user config dir is empty, or holds ``file_text``."""
    xdg = tmp_path / "xdg"
    if file_text is not None:
        (xdg / "llmstruct").mkdir(parents=True)
        (xdg / "llmstruct" / "config.toml").write_text(file_text, encoding="utf-8")
    return {"XDG_CONFIG_HOME": str(xdg), **env}


def _address(env: dict[str, str], host: str | None = None, port: int | None = None) -> tuple[str, int]:
    return serve_address(load_settings(env), host, port)


def test_the_default_is_loopback_7860(tmp_path):
    assert _address(_gradio_env(tmp_path)) == ("127.0.0.1", 7860)


def test_gradio_variables_are_honoured(tmp_path):
    env = _gradio_env(tmp_path, GRADIO_SERVER_NAME="127.0.0.5", GRADIO_SERVER_PORT="8123")
    assert _address(env) == ("127.0.0.5", 8123)


def test_gradio_variables_beat_the_config_file(tmp_path):
    env = _gradio_env(tmp_path, 'host = "127.0.0.9"\nport = 9001\n', GRADIO_SERVER_PORT="8123")
    assert _address(env) == ("127.0.0.9", 8123)  # the port from Gradio's variable, the host from the file


def test_llmstruct_variables_beat_gradio_variables_each_on_its_own(tmp_path):
    env = _gradio_env(tmp_path, GRADIO_SERVER_NAME="127.0.0.5", GRADIO_SERVER_PORT="8123", LLMSTRUCT_PORT="9000")
    assert _address(env) == ("127.0.0.5", 9000)
    env["LLMSTRUCT_HOST"] = "127.0.0.7"
    assert _address(env) == ("127.0.0.7", 9000)


def test_an_explicit_argument_beats_everything(tmp_path):
    env = _gradio_env(tmp_path, 'host = "127.0.0.9"\nport = 9001\n', GRADIO_SERVER_NAME="127.0.0.5",
               GRADIO_SERVER_PORT="8123", LLMSTRUCT_HOST="127.0.0.7", LLMSTRUCT_PORT="9000")
    assert _address(env, "127.0.0.2", 7000) == ("127.0.0.2", 7000)
    assert _address(env, port=7000) == ("127.0.0.7", 7000)


def test_blank_gradio_variables_count_as_unset(tmp_path):
    env = _gradio_env(tmp_path, 'port = 9001\n', GRADIO_SERVER_NAME=" ", GRADIO_SERVER_PORT="")
    assert _address(env) == ("127.0.0.1", 9001)


def test_a_bad_gradio_port_is_an_error_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="GRADIO_SERVER_PORT: port:"):
        load_settings(_gradio_env(tmp_path, GRADIO_SERVER_PORT="http"))


class _Built(Exception):
    """Raised by the stub build_app: the address passed the login check."""


@pytest.fixture
def launch(monkeypatch):
    from llmstruct.app import webapp

    def build_app(*a, **k):
        raise _Built

    monkeypatch.setattr(webapp, "build_app", build_app)
    return webapp.launch


@pytest.mark.parametrize("where", [
    {"GRADIO_SERVER_NAME": "0.0.0.0"},
    {"LLMSTRUCT_HOST": "0.0.0.0"},
    {"file": 'host = "192.168.1.5"\n'},
    {"LLMSTRUCT_HOST": "10.1.1.1", "GRADIO_SERVER_NAME": "127.0.0.1"},
])
def test_a_non_loopback_host_without_a_login_is_refused_whichever_variable_set_it(tmp_path, launch, where):
    where = dict(where)
    env = _gradio_env(tmp_path, where.pop("file", None), **where)
    with pytest.raises(ConfigError, match="refusing to serve on .* without a login"):
        launch(load_settings(env))


def test_a_login_or_a_loopback_argument_lets_it_through(tmp_path, launch):
    env = _gradio_env(tmp_path, GRADIO_SERVER_NAME="0.0.0.0")
    with pytest.raises(_Built):
        launch(load_settings(env), host="127.0.0.1")
    with pytest.raises(_Built):
        launch(load_settings({**env, "LLMSTRUCT_AUTH": "staff:secret"}))
    with pytest.raises(ConfigError, match="refusing to serve on 0.0.0.0"):
        launch(load_settings(_gradio_env(tmp_path)), host="0.0.0.0")


def test_app_py_refuses_gradio_server_name_0000_without_a_login(tmp_path):
    """End to end: a deployment that sets only Gradio's variable is refused before anything loads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMSTRUCT_", "GRADIO_SERVER_"))}
    env.update(_gradio_env(tmp_path, GRADIO_SERVER_NAME="0.0.0.0", LLMSTRUCT_DATA_DIR=str(tmp_path / "data")))
    proc = subprocess.run([sys.executable, str(ROOT / "app.py")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "refusing to serve on 0.0.0.0 without a login" in proc.stderr, proc.stderr
    assert not (tmp_path / "data").exists()
