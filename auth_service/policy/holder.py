"""The policy in force, reloaded on request (SIGHUP) or when its file changes.

A reload that fails validation is refused and the previous policy stays in
force (CONTRACT §3); the ``on_reload`` hook hears about every attempt so the
app can log and count it. Change detection polls ``os.stat`` (mtime, size,
inode), which also notices Kubernetes ConfigMap symlink swaps; a failed file
is not re-parsed until it changes again.
"""

import asyncio
import logging
import os
from collections.abc import Callable

from auth_service.policy.compile import CompiledPolicy, compile_policy
from auth_service.policy.load import load_policy_file
from auth_service.policy.model import PolicyError, PolicyIssue

ReloadHook = Callable[[bool, list[PolicyIssue]], None]
"""Called after each reload attempt with ``(ok, issues)``."""
FileSignature = tuple[int, int, int]

_log = logging.getLogger(__name__)


def _signature(path: str) -> FileSignature | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class PolicyHolder:
    """Holds the current ``CompiledPolicy`` for a policy file.

    The constructor loads the file and raises ``PolicyError`` or ``OSError``
    when it is invalid or unreadable: without a policy the service must not start.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, on_reload: ReloadHook | None = None
    ) -> None:
        self.path = os.fspath(path)
        """The policy file."""
        self.on_reload = on_reload
        """Hook told about every reload attempt; may be set after construction."""
        self._signature = _signature(self.path)
        self._current = compile_policy(load_policy_file(self.path))

    @property
    def current(self) -> CompiledPolicy:
        """The policy in force; read it once per request and use that object throughout."""
        return self._current

    def reload(self) -> list[PolicyIssue]:
        """Load the file again; swap it in when valid, else keep the old one and return why."""
        # Taken before reading, so a write racing with this read shows up as a
        # change at the next check.
        self._signature = _signature(self.path)
        try:
            compiled = compile_policy(load_policy_file(self.path))
        except PolicyError as exc:
            issues = exc.errors
        except OSError as exc:
            issues = [PolicyIssue(message=f"cannot read {self.path}: {exc.strerror or exc}")]
        else:
            self._current = compiled
            issues = []
        if self.on_reload is not None:
            self.on_reload(not issues, issues)
        return issues

    def check_once(self) -> list[PolicyIssue] | None:
        """Reload if the file changed since the last load; ``None`` when it did not."""
        if _signature(self.path) == self._signature:
            return None
        return self.reload()

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the file every ``interval`` seconds and reload on change, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.check_once()
            except Exception:
                # The hook is the app's code; a bug there must not end the watch.
                _log.exception("policy reload hook failed")
