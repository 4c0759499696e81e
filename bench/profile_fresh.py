"""Profile ``auth-service serve`` under load with py-spy; write text summaries.

    python bench/profile_fresh.py [--seconds 8] [--out bench/profiles]

Starts what ``make bench`` starts (the Keycloak stand-in, the service with its
shipped settings on one worker pinned to CPU 0), then for each scenario runs wrk
on CPU 1 while ``py-spy record`` samples the worker, and writes
``<out>/<scenario>.txt``: the share of samples per function, by itself (self) and
with what it calls (inclusive), top 40 each. Scenarios: ``fresh`` (a new token
every request), ``cached`` (one token repeated).

Needs py-spy (in the dev extra) and wrk; run as a user allowed to ptrace the
worker (root, or ``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import (
    BENCH,
    LOAD_CPU,
    ORIGINAL_URL,
    ROOT,
    VENV_BIN,
    BenchError,
    Processes,
    WrkConfig,
    auth_check,
    check_tools,
    http,
    migrate_bench_database,
    mint_tokens,
    pinned,
    prepare_database,
    service_env,
    start_ours,
    start_standin,
)


def worker_pid(serve_pid: int) -> int:
    """The granian worker: the one child process of ``serve`` that is python."""
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(serve_pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    pids = [int(line.split()[0]) for line in out.splitlines() if line.strip()]
    if not pids:
        return serve_pid
    return pids[-1]


def summarise(raw: Path, title: str) -> str:
    """Self and inclusive shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        total += count
        if frames:
            own[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            incl[name] += count
    lines = [title, f"samples: {total}", "", "self %   function"]
    for name, n in own.most_common(40):
        lines.append(f"{100 * n / total:6.2f}   {name}")
    lines += ["", "incl %   function"]
    for name, n in incl.most_common(40):
        lines.append(f"{100 * n / total:6.2f}   {name}")
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    """``fn (path/to/file.py:12)`` → ``fn (file.py)``: lines merged, site-packages cut."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "auth_service/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def profile(
    name: str,
    pid: int,
    url: str,
    seconds: int,
    out: Path,
    work: Path,
    *,
    headers: list[str],
    token_file: str,
) -> None:
    raw = work / f"{name}.raw"
    spy_argv = [str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "400"]
    spy_argv += ["--duration", str(seconds), "--format", "raw", "--nonblocking", "-o", str(raw)]
    spy = subprocess.Popen(
        spy_argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    argv = ["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(BENCH / "tokens.lua"), *headers]
    argv += [url, "--", token_file, ORIGINAL_URL]
    load = subprocess.run(pinned(LOAD_CPU, argv, True), capture_output=True, text=True, check=False)
    _, err = spy.communicate(timeout=seconds + 30)
    if not raw.exists():
        raise BenchError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    rps = next((ln for ln in load.stdout.splitlines() if ln.startswith("Requests/sec")), "?")
    text = summarise(raw, f"py-spy, scenario {name}, {seconds} s of wrk -t1 -c32; {rps.strip()}")
    (out / f"{name}.txt").write_text(text)
    print(text[:3000])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=BENCH / "profiles")
    parser.add_argument(
        "--mint-body",
        default='{"username":"alice","lifetime":3600}',
        help="JSON body of the stand-in's mint call for the fresh tokens",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed")
    pin = check_tools()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="auth-profile-"))
    procs = Processes(work)
    try:
        kc_base, issuer = start_standin(procs)
        cfg = WrkConfig(threads=1, connections=8, pin=pin)
        fresh = work / "fresh.txt"
        mint_tokens(cfg, kc_base, fresh, 8000 * args.seconds)
        status, _, body = http(f"{kc_base}/_standin/mint", data=args.mint_body.encode())
        if status != 200:
            raise BenchError(f"mint failed: {status}")
        token = json.loads(body)["access_token"]
        env = service_env(issuer, prepare_database(), work / "spool")
        migrate_bench_database(env)
        base = start_ours(procs, env, pin=pin)
        status, _ = auth_check(base, token)
        if status != 200:
            raise BenchError(f"the service answered {status}")
        pid = worker_pid(procs.running["ours"].pid)
        url = f"{base}/authz/auth-request"
        time.sleep(0.5)
        profile("fresh", pid, url, args.seconds, args.out, work, headers=[], token_file=str(fresh))
        bearer = ["-H", f"Authorization: Bearer {token}"]
        profile("cached", pid, url, args.seconds, args.out, work, headers=bearer, token_file="-")
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
