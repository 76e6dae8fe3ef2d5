"""The artifact, not the source tree: the sdist and the wheel as a release builds them, installed where no checkout is.

The sdist is built first and the wheel from it (``python -m build``'s way), so a
file the sdist leaves out breaks the wheel too. The wheel is installed into a
fresh virtual environment outside the checkout, and its commands are run from a
directory that holds a hostile ``server.py``, ``tui.py`` and ``tally.py``:
none of them may ever run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.markdown import REPOSITORY
from tests.support.local import argv_of, kill_pids, server_pids
from tests.support.newcomer import new_venv, newcomer_env

# Building takes some 15 s and installing into a new environment some 30 s on a busy machine: once, on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.xdist_group("artifact")]

# Imported or run, each says so in a file beside it and stops.
HOSTILE = "import pathlib, sys\npathlib.Path(__file__).with_name('RAN-' + pathlib.Path(__file__).stem).touch()\nsys.exit(99)\n"  # noqa: E501
FOLDERS = {"server": "tally/server", "tui": "tally/tui"}


@dataclass(frozen=True, slots=True)
class Built:
    sdist: Path
    wheel: Path
    source: list[str]  # the checkout's files, as git would commit them


def checkout_files() -> list[str]:
    """Files tracked or about to be (not ignored), relative to the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPOSITORY, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return sorted(name for name in listed.split("\0") if name and (REPOSITORY / name).is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """An sdist and a wheel built from a copy of the checkout (the checkout itself is never written to)."""
    root = tmp_path_factory.mktemp("build")
    source, dist = root / "source", root / "dist"
    files = checkout_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, source / name)
    # The build package runs from the test environment; the build itself happens in an isolated one.
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    yield Built(sdist, wheel, files)


def test_the_wheel_installs_nothing_but_tally(built: Built) -> None:
    """At the top level the wheel holds only the tally package and its dist-info: no server/, no tui/."""
    with zipfile.ZipFile(built.wheel) as wheel:
        names = wheel.namelist()
    top = {name.split("/")[0] for name in names}
    (dist_info,) = (entry for entry in top if entry.endswith(".dist-info"))
    assert dist_info.startswith("tally_live-")
    assert top == {"tally", dist_info}
    with zipfile.ZipFile(built.wheel) as wheel:
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "tally = tally.tui.cli:main" in entry_points
    assert "tally-server = tally.server.cli:main" in entry_points


def test_the_wheel_holds_every_file_of_the_packages(built: Built) -> None:
    """Every module, stylesheet, page and Lua script under server/ and tui/ is in the wheel, under tally/."""
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    expected = {
        FOLDERS[name.split("/")[0]] + name[name.index("/") :]
        for name in built.source
        if name.split("/")[0] in FOLDERS and "__pycache__" not in name
    }
    assert expected - names == set()


def test_the_sdist_holds_what_a_build_needs(built: Built) -> None:
    """The sdist has the project file, the README it names and every package file (the wheel was built from it)."""
    with tarfile.open(built.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = {"pyproject.toml", "README.md"}
    needed |= {name for name in built.source if name.split("/")[0] in FOLDERS}
    assert needed - names == set()


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a fresh virtual environment, outside the checkout, with the wheel installed."""
    root = tmp_path_factory.mktemp("installed")
    return new_venv(root / "venv", newcomer_env(root), str(built.wheel))


def hostile_directory(tmp_path: Path) -> Path:
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    for name in ("server.py", "tui.py", "tally.py"):
        (hostile / name).write_text(HOSTILE)
    return hostile


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_for_connections(url: str, count: int, timeout: float = 30.0) -> None:
    """Wait until the server's /metrics counts ``count`` open tally.v2 connections."""
    deadline = time.monotonic() + timeout
    metrics = "http" + url.removeprefix("ws") + "/metrics"
    wanted = f'tally_connections_open{{protocol="tally.v2"}} {count:.1f}'
    while True:
        with urllib.request.urlopen(metrics, timeout=5) as response:
            if wanted in response.read().decode():
                return
        assert time.monotonic() < deadline, f"never {count} connections at {url}"
        time.sleep(0.05)


def test_the_installed_wheel_runs_from_a_hostile_directory(installed: Path, tmp_path: Path) -> None:
    """From a fresh venv outside the checkout, tally-server, tally add, status and watch work; no local .py runs."""
    env, bin_dir, hostile = newcomer_env(tmp_path), installed, hostile_directory(tmp_path)
    server = subprocess.Popen(
        [str(bin_dir / "tally-server"), "--port", "0", "--db", str(tmp_path / "tally.db")],
        cwd=hostile, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watch = None
    try:
        assert server.stderr is not None
        url = next(line for line in server.stderr if "serving on" in line).split("serving on ")[1].split()[0]
        watch = subprocess.Popen(
            [str(bin_dir / "tally"), "watch", "--json", "--url", url], cwd=hostile, env=env,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for_connections(url, 1)  # the watcher is in: it sees every update from here on
        assert run([str(bin_dir / "tally"), "add", "5", "--url", url], hostile, env) == "5\n"
        status = json.loads(run([str(bin_dir / "tally"), "status", "--json", "--url", url], hostile, env))
        assert (status["total"], status["seq"]) == (5, 1)
        assert watch.stdout is not None
        update = json.loads(watch.stdout.readline())  # the add above (a watcher starts from the latest update)
        assert (update["amount"], update["total"]) == (5, 5)
    finally:
        for process in (watch, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)
    assert server.returncode == 0
    assert sorted(path.name for path in hostile.iterdir()) == ["server.py", "tally.py", "tui.py"]


def test_the_installed_dashboard_starts_its_local_server_isolated(installed: Path, tmp_path: Path) -> None:
    """`tally status` with no URL starts the user's local server from the venv with -P, past a hostile tally.py."""
    env, bin_dir, hostile = newcomer_env(tmp_path), installed, hostile_directory(tmp_path)
    runtime = env["XDG_RUNTIME_DIR"]
    try:
        status = json.loads(run([str(bin_dir / "tally"), "status", "--json"], hostile, env))
        assert status["total"] == 0 and status["url"].startswith("unix://")
        (pid,) = server_pids(runtime)
        argv = argv_of(pid)
        assert argv[0].startswith(str(bin_dir)) and "-P" in argv
    finally:
        kill_pids(server_pids(runtime))
    assert sorted(path.name for path in hostile.iterdir()) == ["server.py", "tally.py", "tui.py"]


def test_the_hostile_directory_would_bite_without_isolation(installed: Path, tmp_path: Path) -> None:
    """Negative control: `python -m tally.server` from that directory without -P runs its tally.py instead."""
    env, hostile = newcomer_env(tmp_path), hostile_directory(tmp_path)
    done = subprocess.run(
        [str(installed / "python"), "-m", "tally.server", "--help"], cwd=hostile, env=env, capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert (hostile / "RAN-tally").exists()
