"""deploy/ensure-system-packages.sh: the one list of Debian packages, used by make and CI.

`apt-get` is replaced by a recording script on PATH: the tests check what would
be installed, never install anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "ensure-system-packages.sh"
LIST = ROOT / "deploy" / "system-packages.txt"


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    """A directory every user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="auth-pkgs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake_apt(tmp_dir: Path) -> tuple[Path, Path]:
    """A directory with an ``apt-get`` that records its arguments; and the record file."""
    bindir, record = tmp_dir / "bin", tmp_dir / "apt-calls"
    bindir.mkdir()
    apt = bindir / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$*" >> {record}\n')
    apt.chmod(0o755)
    record.touch()
    record.chmod(0o666)
    return bindir, record


def run(bindir: Path, *args: str, as_user: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    cmd = [str(SCRIPT), *args]
    if as_user is not None:
        cmd = ["runuser", "-u", as_user, "--", "env", f"PATH={env['PATH']}", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def write_list(tmp_dir: Path, lines: str) -> Path:
    path = tmp_dir / "packages.txt"
    path.write_text(lines)
    path.chmod(0o644)
    return path


def test_nothing_missing_is_silent_and_installs_nothing(
    fake_apt: tuple[Path, Path], tmp_dir: Path
) -> None:
    """Every check satisfied: exit 0, no output, apt-get never called."""
    bindir, record = fake_apt
    shutil.copy("/bin/sh", bindir / "present-tool")
    listed = write_list(tmp_dir, "# comment\n\npresent-pkg cmd:present-tool base\n")
    done = run(bindir, "--list", str(listed))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert record.read_text() == ""


def test_root_installs_exactly_the_missing_packages(
    fake_apt: tuple[Path, Path], tmp_dir: Path
) -> None:
    """As root, apt-get installs what is missing (and only that); since the fake apt-get
    installs nothing, the script then says what is still missing and fails."""
    bindir, record = fake_apt
    listed = write_list(
        tmp_dir,
        "gone-pkg cmd:no-such-command-xyz base\n"
        "gone-lib lib:libno-such-lib.so.9 base\n"
        "here-pkg cmd:sh base\n"
        "server-pkg cmd:no-such-server servers\n",
    )
    done = run(bindir, "--list", str(listed))
    assert done.returncode == 1
    if os.geteuid() != 0:  # not root here: the other branch, nothing installed
        assert "sudo apt-get install -y gone-pkg gone-lib" in done.stderr
        assert record.read_text() == ""
        return
    calls = record.read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1] == "install -y -qq --no-install-recommends gone-pkg gone-lib"
    assert done.stderr.strip() == "still missing after apt-get install: gone-pkg gone-lib"
    record.write_text("")
    run(bindir, "--servers", "--list", str(listed))
    assert "server-pkg" in record.read_text()


def test_not_root_names_the_apt_get_command_in_one_line(
    fake_apt: tuple[Path, Path], tmp_dir: Path
) -> None:
    """Without root nothing is installed; one line names the command to run."""
    bindir, record = fake_apt
    listed = write_list(tmp_dir, "gone-pkg cmd:no-such-command-xyz base\nhere cmd:sh base\n")
    user = "nobody" if os.geteuid() == 0 else None
    done = run(bindir, "--list", str(listed), as_user=user)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "missing system packages: gone-pkg; install them with: sudo apt-get install -y gone-pkg"
    ]
    assert record.read_text() == ""


def test_an_unreadable_list_is_an_error_not_a_pass(fake_apt: tuple[Path, Path]) -> None:
    """A list that cannot be read must not look like "nothing missing"."""
    done = run(fake_apt[0], "--list", "/nonexistent/packages.txt")
    assert done.returncode == 2
    assert "cannot read the package list" in done.stderr


def test_the_list_holds_what_the_suite_and_dev_need_and_make_and_ci_use_it() -> None:
    """nginx (gateway tests, `make dev`), libzbar0 and librsvg2-bin (QR code tests) are listed;
    `make install` and `.ci/run` both run the script, and CI installs nothing else itself."""
    packages = {
        line.split()[0]
        for line in LIST.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"nginx", "libzbar0", "librsvg2-bin", "python3.11-venv"} <= packages
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(BIN\)/auth-service:.*\| system-packages$", makefile, re.M)
    assert "./deploy/ensure-system-packages.sh" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./deploy/ensure-system-packages.sh --servers" in ci
    assert "apt-get" not in ci
    assert os.access(SCRIPT, os.X_OK)
