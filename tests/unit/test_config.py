"""Remembered preferences: tui.config, and the order in which `tally` takes its URL and name."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tally.tui import cli as tui_cli
from tally.tui.config import Preferences, config_path, load, save_value


def test_the_file_is_in_the_platforms_config_directory(private_directories: Path) -> None:
    """~/.config/tally/config.toml on Linux (here, the test's own XDG_CONFIG_HOME)."""
    assert config_path() == private_directories / "config" / "tally" / "config.toml"


def test_missing_broken_and_wrong_files_are_told_not_fatal(tmp_path: Path) -> None:
    """No file: no preferences. A broken file or a value of the wrong type: the defaults, and why."""
    path = tmp_path / "config.toml"
    assert load(path) == Preferences()
    path.write_text('url = "ws://127.0.0.1:9"\nname = "ann"\ntheme = "nord"\n')
    assert load(path) == Preferences(url="ws://127.0.0.1:9", name="ann", theme="nord")
    path.write_text("url = ")
    assert load(path).problem is not None and load(path).url is None
    path.write_text('name = 5\ntheme = "nord"\n')
    prefs = load(path)
    assert prefs.name is None and prefs.theme == "nord" and prefs.problem is not None and "name" in prefs.problem


def test_saving_a_value_keeps_the_users_comments_and_other_keys(tmp_path: Path) -> None:
    """Only the key's line is written (or added before any table); the file reads back."""
    path = tmp_path / "tally" / "config.toml"
    save_value("theme", "nord", path)
    assert load(path).theme == "nord"
    path.write_text('# mine\nname = "ann"  # me\ntheme = "old"\n\n[extra]\nx = 1\n')
    save_value("theme", 'quo"te\\', path)
    text = path.read_text()
    assert text.startswith('# mine\nname = "ann"  # me\n') and "[extra]\nx = 1" in text
    assert tomllib.loads(text)["theme"] == 'quo"te\\'
    save_value("url", "ws://h:1", path)
    assert tomllib.loads(path.read_text())["url"] == "ws://h:1" and "x = 1" in path.read_text()


@pytest.fixture
def configured(private_directories: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("TALLY_URL", "TALLY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("tally.tui.cli.getpass.getuser", lambda: "carol")
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text('url = "ws://127.0.0.1:7000"\nname = "from-config"\ntheme = "nord"\n')
    return path


def test_flags_then_the_environment_then_the_file_then_the_defaults(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """URL: --url > $TALLY_URL > config > your local server. Name: --name > config > login name."""
    args = tui_cli.parse_args([])
    assert (args.url, args.name, args.spawn, args.theme) == ("ws://127.0.0.1:7000", "from-config", False, "nord")
    monkeypatch.setenv("TALLY_URL", "ws://127.0.0.1:8000")
    assert tui_cli.parse_args([]).url == "ws://127.0.0.1:8000"
    args = tui_cli.parse_args(["--url", "ws://127.0.0.1:9000", "--name", "flag", "--theme", "dracula"])
    assert (args.url, args.name, args.theme) == ("ws://127.0.0.1:9000", "flag", "dracula")
    configured.write_text("")
    monkeypatch.delenv("TALLY_URL")
    args = tui_cli.parse_args([])
    assert args.url.startswith("unix://") and args.spawn and args.name == "carol"


def test_a_bad_url_or_name_in_the_file_is_a_usage_error(configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Said at once, naming the file, as a flag's mistake would be."""
    configured.write_text('url = "127.0.0.1:7000"\n')
    with pytest.raises(SystemExit) as exited:
        tui_cli.parse_args([])
    assert exited.value.code == 2 and str(configured) in capsys.readouterr().err
