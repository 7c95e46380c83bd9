"""Removing what a benchmark run made, on failure too, found by the run's own marks.

A run gives every process it starts one mark, ``NPB_BENCH_RUN=<tag>`` in the environment
(``marked``), and keeps netplumb's records in a temporary directory of its own. netplumb's
hosts' holders are forks of the process that started them and keep its environment; their
commands get an environment of their own but write their output to a log file in that
directory. ``sweep`` first removes every host the records name (``netplumb rm -f``, the
ordinary way: holders, commands, veths, published ports), then kills whatever still carries a
mark (a worker killed halfway leaves hosts its records never got to name), and finally deletes
the run's namespace and directory. Nothing is matched by name pattern: a process of another
run, or another benchmark, carries another tag and another directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
MARK = "NPB_BENCH_RUN"


def marked(env: dict[str, str], tag: str) -> dict[str, str]:
    """``env`` with the run's mark."""
    return {**env, MARK: tag}


def _carries(pid: str, tag: str, tmp: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if f"{MARK}={tag}".encode() in f.read().split(b"\0"):
                return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(tmp + "/"):
                return True
    except OSError:  # gone meanwhile, or a kernel thread
        pass
    return False


def processes(tag: str, tmp: Path) -> list[int]:
    """The processes that carry the run's mark or have a file of its directory open."""
    me = os.getpid()
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and int(pid) != me and _carries(pid, tag, str(tmp))
    ]


def host_names(ns: str, env: dict[str, str]) -> list[str]:
    """The hosts netplumb's records name in the run's state directory (``env``)."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, NETPLUMB, "ps", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        return []
    return [str(h["name"]) for h in json.loads(proc.stdout or "[]")]


def sweep(ns: str, tmp: Path, tag: str, env: dict[str, str]) -> dict[str, int]:
    """Remove what the run made: hosts by their records, then any process that still carries
    the run's mark, then the namespace and the directory. Returns how many of each it found."""
    names = host_names(ns, env) if os.path.exists(f"/run/netns/{ns}") else []
    if names:
        subprocess.run(
            ["ip", "netns", "exec", ns, NETPLUMB, "rm", "-f", *names],
            env=env,
            capture_output=True,
            check=False,
            timeout=600,
        )
    killed = processes(tag, tmp)
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    left, deadline = killed, time.monotonic() + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if _alive(p)]
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"hosts": len(names), "processes_killed": len(killed)}


def _alive(pid: int) -> bool:
    """Not yet a zombie (a killed child of ours stays one until reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(") ")[2][:1] != "Z"
    except OSError:
        return False
