"""PolicyHolder: reload on demand and on file change, refusing invalid files."""

import asyncio
import os
from pathlib import Path

import pytest

from auth_service.policy import PolicyError, PolicyHolder, PolicyIssue

from .samples import CONTRACT_POLICY, rules

GOOD = rules('name = "v2"\npaths = ["/v2/**"]')
BAD = rules('name = "broken"\npaths = ["/x*"]', 'name = "broken"\npaths = ["/y"]')


class Recorder:
    """Collects on_reload calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, list[PolicyIssue]]] = []

    def __call__(self, ok: bool, issues: list[PolicyIssue]) -> None:
        self.calls.append((ok, issues))


def write(path: Path, text: str, stamp: int) -> None:
    """Write ``text`` and give the file a distinct mtime so the change is always seen."""
    path.write_text(text)
    os.utime(path, ns=(stamp * 10**9, stamp * 10**9))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    """A policy file holding the CONTRACT example."""
    path = tmp_path / "policy.toml"
    write(path, CONTRACT_POLICY, 1)
    return path


def names(holder: PolicyHolder) -> list[str]:
    """Rule names of the policy in force."""
    return [rule.name for rule in holder.current.rules]


def test_constructor_loads_the_file(policy_file: Path) -> None:
    """The holder starts with the file's policy compiled."""
    holder = PolicyHolder(policy_file)
    assert names(holder) == ["public health", "orders writes", "tenant isolation"]


def test_constructor_refuses_an_invalid_or_missing_file(tmp_path: Path) -> None:
    """Without a valid policy the service must not start."""
    bad = tmp_path / "bad.toml"
    write(bad, BAD, 1)
    with pytest.raises(PolicyError):
        PolicyHolder(bad)
    with pytest.raises(OSError):
        PolicyHolder(tmp_path / "absent.toml")


def test_reload_swaps_in_a_valid_file(policy_file: Path) -> None:
    """A valid new file replaces the policy and reports success."""
    recorder = Recorder()
    holder = PolicyHolder(policy_file, on_reload=recorder)
    write(policy_file, GOOD, 2)
    assert holder.reload() == []
    assert names(holder) == ["v2"]
    assert recorder.calls == [(True, [])]


def test_reload_keeps_the_old_policy_on_an_invalid_file(policy_file: Path) -> None:
    """An invalid file is refused with every issue; the previous policy stays in force."""
    recorder = Recorder()
    holder = PolicyHolder(policy_file, on_reload=recorder)
    before = holder.current
    write(policy_file, BAD, 2)
    issues = holder.reload()
    assert len(issues) == 2
    assert holder.current is before
    assert recorder.calls == [(False, issues)]


def test_reload_keeps_the_old_policy_when_the_file_vanishes(policy_file: Path) -> None:
    """An unreadable file is one issue, not an exception."""
    holder = PolicyHolder(policy_file)
    before = holder.current
    policy_file.unlink()
    (issue,) = holder.reload()
    assert issue.message.startswith("cannot read")
    assert holder.current is before


def test_check_once_reloads_only_on_change(policy_file: Path) -> None:
    """The watcher's check reloads when mtime, size or inode change, else does nothing."""
    recorder = Recorder()
    holder = PolicyHolder(policy_file, on_reload=recorder)
    assert holder.check_once() is None
    write(policy_file, GOOD, 2)
    assert holder.check_once() == []
    assert names(holder) == ["v2"]
    assert holder.check_once() is None
    assert recorder.calls == [(True, [])]


def test_check_once_does_not_reparse_a_refused_file(policy_file: Path) -> None:
    """A bad file is reported once, then again only after it changes."""
    recorder = Recorder()
    holder = PolicyHolder(policy_file, on_reload=recorder)
    write(policy_file, BAD, 2)
    assert holder.check_once()
    assert holder.check_once() is None
    write(policy_file, GOOD, 3)
    assert holder.check_once() == []
    assert [ok for ok, _ in recorder.calls] == [False, True]
    assert names(holder) == ["v2"]


def test_check_once_sees_an_atomic_replace(policy_file: Path) -> None:
    """A rename over the file (new inode) is a change even with equal mtime and size."""
    holder = PolicyHolder(policy_file)
    replacement = policy_file.with_suffix(".new")
    write(replacement, CONTRACT_POLICY.replace("public health", "public healtH"), 1)
    os.replace(replacement, policy_file)
    assert holder.check_once() == []
    assert names(holder)[0] == "public healtH"


async def test_watch_reloads_changed_file_and_survives_hook_errors(policy_file: Path) -> None:
    """The watch loop picks up changes and keeps running when the hook raises."""
    refused, reloaded = asyncio.Event(), asyncio.Event()

    def hook(ok: bool, issues: list[PolicyIssue]) -> None:
        if not ok:
            refused.set()
            raise RuntimeError("hook bug")
        reloaded.set()

    holder = PolicyHolder(policy_file, on_reload=hook)
    task = asyncio.create_task(holder.watch(interval=0))
    try:
        write(policy_file, BAD, 2)
        await asyncio.wait_for(refused.wait(), timeout=5)
        write(policy_file, GOOD, 3)
        await asyncio.wait_for(reloaded.wait(), timeout=5)
    finally:
        task.cancel()
    assert names(holder) == ["v2"]
