"""The two commands' options: defaults, environment variables, and usage errors (exit status 2)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tally.server import cli as server_cli
from tally.server.config import default_db_path
from tally.server.limits import Limits
from tally.tui import cli as tui_cli


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TALLY_URL", "TALLY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))


def usage_error(capsys: pytest.CaptureFixture[str], parse: Callable[[list[str]], object], argv: list[str]) -> str:
    """Parse ``argv``, expect argparse's usage error (exit status 2), and return what it printed."""
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


# -- tally-server -------------------------------------------------------------------


def test_server_defaults() -> None:
    """Loopback on 8765, the user's data directory, info logs, no token, and every Limits default."""
    args = server_cli.parse_args([])
    assert (args.host, args.port, args.db, args.log_level) == ("127.0.0.1", 8765, str(default_db_path()), "info")
    assert (args.token, args.tls_cert, args.tls_key, args.allow_origin) == (None, None, None, [])
    assert (args.compression, args.exit_when_idle) == (False, None)
    limits = Limits()
    assert (args.max_message_bytes, args.max_amount, args.rate, args.burst) == (
        limits.max_message_bytes, limits.max_amount, limits.rate, limits.burst
    )  # fmt: skip
    assert (args.max_connections, args.max_write_buffer) == (limits.max_connections, limits.max_write_buffer)


def test_server_options() -> None:
    """Every option is read into its field; --allow-origin may repeat."""
    args = server_cli.parse_args(
        ["--host", "0.0.0.0", "--port", "0", "--db", ":memory:", "--log-level", "debug", "--token", "t",
         "--tls-cert", "c.pem", "--tls-key", "k.pem", "--allow-origin", "https://a.example",
         "--allow-origin", "https://b.example", "--max-message-bytes", "100", "--max-amount", "7",
         "--rate", "2.5", "--burst", "3", "--max-connections", "4", "--max-write-buffer", "5",
         "--compression", "--exit-when-idle", "60"]
    )  # fmt: skip
    assert (args.host, args.port, args.db, args.log_level, args.token) == ("0.0.0.0", 0, ":memory:", "debug", "t")
    assert (args.tls_cert, args.tls_key) == ("c.pem", "k.pem")
    assert args.allow_origin == ["https://a.example", "https://b.example"]
    assert (args.max_message_bytes, args.max_amount, args.rate, args.burst) == (100, 7, 2.5, 3)
    assert (args.max_connections, args.max_write_buffer, args.compression, args.exit_when_idle) == (4, 5, True, 60.0)


def test_server_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """TALLY_TOKEN is the default token; --token overrides it."""
    monkeypatch.setenv("TALLY_TOKEN", "from-env")
    assert server_cli.parse_args([]).token == "from-env"
    assert server_cli.parse_args(["--token", "given"]).token == "given"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "k.pem"], "--tls-cert and --tls-key go together"),
        (["--port", "http"], "invalid int value"),
        (["--log-level", "verbose"], "invalid choice"),
        (["--rate", "fast"], "invalid float value"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_server_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], said: str) -> None:
    """A bad command line is refused before anything starts, saying what is wrong."""
    assert said in usage_error(capsys, server_cli.parse_args, argv)


# -- tally --------------------------------------------------------------------------


def test_dashboard_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This user's own local server (a socket in a private directory), the login name, no token, the system's CAs."""
    monkeypatch.setattr("tally.tui.cli.getpass.getuser", lambda: "carol")
    args = tui_cli.parse_args([])
    assert (args.url, args.name, args.spawn, args.token, args.cafile) == (
        f"unix://{tmp_path}/run/tally/tally.sock", "carol", True, None, None
    )  # fmt: skip
    assert (tmp_path / "run" / "tally").stat().st_mode & 0o777 == 0o700


def test_only_the_users_own_local_server_is_ever_started() -> None:
    """With any --url, even this machine's default port, the dashboard never starts a server."""
    for url in ("ws://127.0.0.1:8765", "ws://127.0.0.1:19101", "ws://localhost"):
        assert tui_cli.parse_args(["--url", url, "--name", "x"]).spawn is False
    assert tui_cli.parse_args(["--no-spawn", "--name", "x"]).spawn is False


def test_dashboard_options() -> None:
    """Every option is read; the name is normalised as the server would."""
    args = tui_cli.parse_args(
        ["--url", "wss://tally.example", "--name", "  Bob  ", "--no-spawn", "--token", "t", "--cafile", "ca.pem"]
    )
    assert (args.url, args.name, args.spawn, args.token, args.cafile) == (
        "wss://tally.example", "Bob", False, "t", "ca.pem"
    )  # fmt: skip


def test_dashboard_url_and_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """TALLY_URL and TALLY_TOKEN are the defaults; options override them."""
    monkeypatch.setenv("TALLY_URL", "wss://tally.example:9000")
    monkeypatch.setenv("TALLY_TOKEN", "from-env")
    args = tui_cli.parse_args(["--name", "x"])
    assert (args.url, args.token) == ("wss://tally.example:9000", "from-env")
    args = tui_cli.parse_args(["--name", "x", "--url", "ws://127.0.0.1:1", "--token", "given"])
    assert (args.url, args.token) == ("ws://127.0.0.1:1", "given")


def test_a_token_file_is_read_and_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--token-file keeps the token out of `ps`; its first line is the token."""
    monkeypatch.setenv("TALLY_TOKEN", "from-env")
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert tui_cli.parse_args(["--name", "x", "--token-file", str(secret)]).token == "from-file"


def test_a_token_over_plain_ws_to_another_machine_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """The token would cross the network in clear: a usage error unless --insecure-token says it is fine."""
    said = usage_error(capsys, tui_cli.parse_args, ["--name", "x", "--url", "ws://tally.example", "--token", "t"])
    assert "in clear" in said and "--insecure-token" in said
    args = tui_cli.parse_args(["--name", "x", "--url", "ws://tally.example", "--token", "t", "--insecure-token"])
    assert args.token == "t"
    assert tui_cli.parse_args(["--name", "x", "--url", "wss://tally.example", "--token", "t"]).token == "t"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--url", "127.0.0.1:8765"], "--url: '127.0.0.1:8765' has no scheme: write ws://127.0.0.1:8765"),
        (["--url", "http://tally.example"], "the scheme must be ws://, wss:// or unix://"),
        (["--url", "unix://relative.sock"], "write unix:///absolute/path/to/socket"),
        (["--token-file", "/nonexistent/token"], "--token-file: No such file or directory"),
        (["--url", "ws://host:99999"], "the port must be a number"),
        (["--name", ""], "--name: name must not be empty"),
        (["--name", "x" * 33], "--name: name must be at most 32 characters"),
        (["--name", "\u0430lice"], "--name: name must not mix Latin, Cyrillic and Greek"),
        (["--name", "\u3164"], "--name: name must contain something visible"),
        (["--name", "evil\u202e"], "--name: name must not contain control"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_dashboard_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], said: str) -> None:
    """A URL the dashboard cannot use, or a name the server would refuse, is a usage error."""
    assert said in usage_error(capsys, tui_cli.parse_args, ["--name", "x", *argv])


def test_a_bad_tally_url_in_the_environment_is_a_usage_error_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TALLY_URL is checked like --url."""
    monkeypatch.setenv("TALLY_URL", "localhost:8765")
    assert "has no scheme" in usage_error(capsys, tui_cli.parse_args, ["--name", "x"])


@pytest.mark.parametrize("login", ["\x1b[31mroot", "", "x" * 40])
def test_an_unusable_login_name_falls_back_to_anonymous(monkeypatch: pytest.MonkeyPatch, login: str) -> None:
    """A login name the server would refuse is not used as the default name."""
    monkeypatch.setattr("tally.tui.cli.getpass.getuser", lambda: login)
    assert tui_cli.parse_args([]).name == "anonymous"


def test_no_login_name_at_all_falls_back_to_anonymous(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a login name (no user entry, no LOGNAME), the default name is still valid."""

    def no_user() -> str:
        raise OSError("no login name")

    monkeypatch.setattr("tally.tui.cli.getpass.getuser", no_user)
    assert tui_cli.parse_args([]).name == "anonymous"


def test_the_script_commands_load_no_textual() -> None:
    """`tally add`, `watch` and `status` run without loading Textual or Rich (their start-up); the dashboard does."""
    show = "import sys; print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'rich'}))"
    scripts = subprocess.run(
        [sys.executable, "-c", f"import tally.tui.cli, tally.tui.scripting, tally.tui.link; {show}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert scripts.stdout.split() == ["[]"], scripts.stdout
    dashboard = subprocess.run(
        [sys.executable, "-c", f"import tally.tui.app; {show}"], capture_output=True, text=True, check=True
    )
    assert dashboard.stdout.split() == ["['rich',", "'textual']"], "the negative control: the app does load them"


def test_an_amount_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`tally add 1,5` prints the one line the docs show, exit status 2, and no usage block."""
    with pytest.raises(SystemExit) as exited:
        tui_cli.parse_args(["--name", "x", "add", "1,5"])
    assert exited.value.code == 2
    assert capsys.readouterr() == ("", "tally: error: add: '1,5': commas only between 3 digits\n")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--url", "localhost:8765"], "tally: error: --url: 'localhost:8765' has no scheme"),
        (["--name", ""], "tally: error: --name: name must not be empty"),
        (["add", "--op-id", "", "5"], "tally: error: add: --op-id '': an op id is 1 to 64 printable ASCII"),
        (["add", "--op-id", "x" * 65, "5"], "an op id is 1 to 64 printable ASCII characters"),
        (["add", "--op-id", "caf\u00e9", "5"], "an op id is 1 to 64 printable ASCII characters"),
        (["add", "--op-id", "a\tb", "5"], "an op id is 1 to 64 printable ASCII characters"),
    ],
)
def test_values_that_cannot_be_used_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    """A URL, a name or an op id that cannot be used: one line that says why, exit status 2."""
    argv = argv if "--name" in argv else ["--name", "x", *argv]
    err = usage_error(capsys, tui_cli.parse_args, argv)
    assert said in err and len(err.splitlines()) == 1, err


def test_op_id_and_fail_fast_are_read() -> None:
    """--op-id is kept as given (the protocol's id rule), --fail-fast is off unless asked for."""
    args = tui_cli.parse_args(["--name", "x", "add", "--op-id", "signups-2025-06-01", "--fail-fast", "5"])
    assert (args.amount, args.op_id, args.fail_fast, args.timeout) == (5, "signups-2025-06-01", True, 30.0)
    args = tui_cli.parse_args(["--name", "x", "add", "-3"])
    assert (args.amount, args.op_id, args.fail_fast) == (-3, None, False)
    for command in ("watch", "status"):
        assert tui_cli.parse_args(["--name", "x", command, "--fail-fast"]).fail_fast is True


def test_options_before_the_command_name_are_kept() -> None:
    """`tally --url X --token T add 5` uses X and T: the command's own copy of the options does not reset them."""
    args = tui_cli.parse_args(["--url", "ws://127.0.0.1:9", "--token", "t", "--name", "bob", "add", "5"])
    assert (args.url, args.token, args.name, args.spawn) == ("ws://127.0.0.1:9", "t", "bob", False)
    args = tui_cli.parse_args(["--url", "ws://127.0.0.1:9", "status", "--url", "ws://127.0.0.1:10"])
    assert args.url == "ws://127.0.0.1:10"  # given after the name too: the later one wins


@pytest.mark.parametrize("command", ["watch", "status"])
def test_watch_and_status_take_no_name(capsys: pytest.CaptureFixture[str], command: str) -> None:
    """They are never named (a watcher is not listed), so --name after them is not offered."""
    assert "unrecognized arguments: --name" in usage_error(capsys, tui_cli.parse_args, [command, "--name", "x"])


def test_the_help_advertises_no_json_for_add() -> None:
    """The usage lines name only options that exist: `tally add … --json` is refused, and not shown."""
    shown = subprocess.run(
        [sys.executable, "-m", "tally.tui", "--help"], capture_output=True, text=True, check=True
    ).stdout
    add_line = next(line for line in shown.splitlines() if line.strip().startswith("tally add"))
    assert "--json" not in add_line and "--op-id ID" in add_line


def test_both_commands_say_their_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`tally --version` and `tally-server --version` print the installed version and exit 0."""
    from tally.server import version

    for parse, name in ((tui_cli.parse_args, "tally"), (server_cli.parse_args, "tally-server")):
        with pytest.raises(SystemExit) as exited:
            parse(["--version"])
        assert exited.value.code == 0
        assert capsys.readouterr().out == f"{name} {version()}\n"
