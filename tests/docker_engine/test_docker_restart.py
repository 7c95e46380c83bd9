"""A Docker container that restarts gets its pipework interface back (issue 13 §5), against a
real Docker Engine: with ``netplumb watch`` running, and with ``netplumb reconcile`` alone.

As in test_docker_guests.py, netplumb runs inside a throwaway "machine" namespace with its own
state directory: pipework's bridge lives there, and the machine answers pings on it. The
oracle is ``ip -j`` inside the container's (new) namespace and ping.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import Lab
from netns_helpers import BusyboxContainer, BusyboxFactory

pytestmark = [pytest.mark.kernel, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"

Machine = Callable[..., subprocess.CompletedProcess[str]]


class _Machine:
    def __init__(self, lab: Lab) -> None:
        self.lab, self.ns, self.env = lab, lab.host, lab.environ()

    def __call__(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lab.in_host(*argv, check=check, timeout=120)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[_Machine]:
    with Lab(tmp_path, host="m") as lab:
        lab.defer("netplumb gc", lambda: lab.netplumb("gc", check=False))
        yield _Machine(lab)


def _pid(c: BusyboxContainer) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}} {{.State.Pid}}", c.name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[1] if out[0] == "true" else ""


def _eth1(c: BusyboxContainer) -> dict[str, Any] | None:
    """The container's eth1 as ``ip -j addr`` shows it, in its namespace of now."""
    pid = _pid(c)
    if not pid or pid == "0":
        return None
    proc = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "-j", "addr", "show", "dev", "eth1"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return None
    found: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return found[0] if found else None


def _addrs(link: dict[str, Any]) -> list[str]:
    return [
        f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") == "global"
    ]


def _attached(
    busybox_container: BusyboxFactory, machine: _Machine, net: str
) -> tuple[BusyboxContainer, dict[str, Any]]:
    c = busybox_container("restart")
    machine(str(BIN / "pipework"), f"br-{net.split('.')[1]}", c.name, f"{net}.2/24")
    machine("ip", "addr", "add", f"{net}.1/24", "dev", f"br-{net.split('.')[1]}")
    link = _eth1(c)
    assert link is not None and _addrs(link) == [f"{net}.2/24"]
    return c, link


def _back(c: BusyboxContainer, machine: _Machine, net: str, mac: str, timeout: float) -> bool:
    """Poll (bounded) until the container's eth1 is back as it was and answers a ping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        link = _eth1(c)
        if link is not None and link["address"] == mac and _addrs(link) == [f"{net}.2/24"]:
            ping = machine("ping", "-c1", "-W1", f"{net}.2", check=False)
            if ping.returncode == 0:
                return True
        time.sleep(0.1)
    return False


def _restart(c: BusyboxContainer) -> None:
    old = _pid(c)
    subprocess.run(["docker", "restart", "-t", "0", c.name], check=True, capture_output=True)
    new = _pid(c)
    assert new and new != old  # a new init process: a new network namespace


def test_docker_restart_with_watch_running_gives_the_interface_back(
    busybox_container: BusyboxFactory, machine: _Machine
) -> None:
    c, before = _attached(busybox_container, machine, "10.81.0")
    watch = subprocess.Popen(
        ["ip", "netns", "exec", machine.ns, str(BIN / "netplumb"), "watch"],
        env=machine.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline() == "watching\n"
        for _ in range(2):  # and again: the restored record restores once more
            _restart(c)
            assert _back(c, machine, "10.81.0", before["address"], timeout=30)
    finally:
        watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=20)
    assert watch.returncode == 0, err
    assert out.count(f"restored eth1 of {c.name}") == 2, out


def test_reconcile_alone_gives_the_interface_back_after_docker_restart(
    busybox_container: BusyboxFactory, machine: _Machine
) -> None:
    c, before = _attached(busybox_container, machine, "10.82.0")
    _restart(c)
    assert _eth1(c) is None  # Docker knows nothing of it: gone with the old namespace
    out = machine(str(BIN / "netplumb"), "reconcile").stdout
    assert f"restored eth1 of {c.name}" in out
    assert _back(c, machine, "10.82.0", before["address"], timeout=10)
    # in step now: nothing more to do
    assert machine(str(BIN / "netplumb"), "reconcile").stdout == ""
