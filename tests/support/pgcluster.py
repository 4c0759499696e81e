"""A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) that a test may stop and restart.

It lives in a temporary directory and listens on a free port, so stopping it
affects nobody else. PostgreSQL refuses to run as root: when the tests run as
root, every server command runs as the ``postgres`` user (``runuser``).
Durability settings are off (``fsync=off``): the cluster is data for one test.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import free_port, wait_until

BIN = Path(os.environ.get("AUTH_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PgCluster:
    """``initdb`` once, then `start`/`stop` as often as the test needs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="auth-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(
            [
                str(BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )

    @property
    def dsn(self) -> str:
        """DSN of its ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{cmd[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> PgCluster:
        """Start (again, same port and data) and wait until it accepts connections."""
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        self._run(
            [
                str(BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        wait_until(self._ready, 30, "throwaway PostgreSQL to accept connections")
        return self

    def _ready(self) -> bool:
        done = subprocess.run(
            [str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
        )
        return done.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected); connections are refused afterwards."""
        if (self.data / "postmaster.pid").exists():
            self._run([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        wait_until(lambda: not self._ready(), 30, "throwaway PostgreSQL to stop")

    def destroy(self) -> None:
        """Stop it and delete its files."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


__all__ = ["PgCluster"]
