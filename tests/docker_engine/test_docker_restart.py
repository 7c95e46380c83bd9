"""A Docker container that restarts gets its pipework interface back (issue 13 §5), against a
real Docker Engine: with ``netplumb watch`` running, and with ``netplumb reconcile`` alone.

As in test_docker_guests.py, netplumb runs inside a throwaway "machine" namespace with its own
state directory: pipework's bridge lives there, and the machine answers pings on it. The
oracle is ``ip -j`` inside the container's (new) namespace and ping.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import Lab
from netns_helpers import BUSYBOX_IMAGE, BusyboxContainer, BusyboxFactory

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


def _linked_project(machine: _Machine, tmp_path: Path) -> tuple[str, str, Path]:
    """``up`` a project: a netplumb host ``db`` and a Docker service ``web`` linking to it as
    ``database``; returns (db, web, the topology file)."""
    tag = secrets.token_hex(2)
    db, web = f"npt-db{tag}", f"npt-web{tag}"
    path = tmp_path / "linked.yaml"
    path.write_text(
        f"name: npt-lk{tag}\n"
        "services:\n"
        f"  {db}:\n"
        "    command: sleep infinity\n"
        f"  {web}:\n"
        "    runtime: docker\n"
        f"    image: {BUSYBOX_IMAGE}\n"
        "    command: sleep 3600\n"
        f'    links: ["{db}:database"]\n'
    )
    machine(str(BIN / "netplumb"), "up", "-f", str(path))
    return db, web, path


def _link_lines(web: str) -> list[str]:
    hosts = subprocess.run(
        ["docker", "exec", web, "cat", "/etc/hosts"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in hosts.splitlines() if "database" in line.split()]


def test_a_restarted_docker_guest_gets_its_link_lines_to_a_moved_target(
    machine: _Machine, tmp_path: Path
) -> None:
    db, web, path = _linked_project(machine, tmp_path)
    try:
        (line,) = _link_lines(web)
        assert line.split()[0].startswith("10.89.0.") and line.split()[0] != "10.89.0.50"
        watch = subprocess.Popen(
            ["ip", "netns", "exec", machine.ns, str(BIN / "netplumb"), "watch"],
            env=machine.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watch.stdout is not None
            assert watch.stdout.readline() == "watching\n"  # in step: nothing to restore
            # The target moves: made again at another address. Docker's copy of the link (its
            # extra_hosts, given at creation) still says the old one, and writes it again into
            # /etc/hosts when the container starts.
            machine(str(BIN / "netplumb"), "rm", "-f", db)
            machine(str(BIN / "netplumb"), "run", "--name", db, "--ip", "10.89.0.50", "--",
                    "sleep", "infinity")  # fmt: skip
            for _ in range(2):  # and again: each start, Docker writes the stale line again
                subprocess.run(
                    ["docker", "restart", "-t", "0", web], check=True, capture_output=True
                )
                deadline = time.monotonic() + 30
                while [ln.split()[0] for ln in _link_lines(web)] != ["10.89.0.50"]:
                    assert time.monotonic() < deadline, _link_lines(web)
                    time.sleep(0.1)
        finally:
            watch.send_signal(signal.SIGTERM)
            out, err = watch.communicate(timeout=20)
        assert watch.returncode == 0, err
        assert out.count(f"restored /etc/hosts link lines of {web}") >= 2, out
        assert _link_lines(web) == [f"10.89.0.50\tdatabase {db}"]
    finally:
        machine(str(BIN / "netplumb"), "rm", "-f", db, check=False)
        machine(str(BIN / "netplumb"), "down", "-f", str(path), check=False)
        subprocess.run(["docker", "rm", "-f", web], capture_output=True, check=False)


def test_reconcile_puts_back_link_lines_removed_inside_a_docker_guest(
    machine: _Machine, tmp_path: Path
) -> None:
    db, web, path = _linked_project(machine, tmp_path)
    try:
        before = _link_lines(web)
        assert len(before) == 1
        subprocess.run(
            ["docker", "exec", web, "sh", "-c",
             "grep -v database /etc/hosts > /tmp/h && cat /tmp/h > /etc/hosts"],
            check=True,
        )  # fmt: skip
        assert _link_lines(web) == []
        out = machine(str(BIN / "netplumb"), "reconcile").stdout
        assert out == f"restored /etc/hosts link lines of {web}\n"
        assert _link_lines(web) == [f"{before[0].split()[0]}\tdatabase {db}"]
        assert machine(str(BIN / "netplumb"), "reconcile").stdout == ""  # in step
    finally:
        machine(str(BIN / "netplumb"), "down", "-f", str(path), check=False)
        subprocess.run(["docker", "rm", "-f", web], capture_output=True, check=False)


def test_gc_keeps_a_stopped_containers_records_and_start_gets_the_interface_back(
    busybox_container: BusyboxFactory, machine: _Machine
) -> None:
    """As Docker keeps a stopped container's network settings: ``gc`` forgets the records of
    a removed container only, and a stopped one gets its interface back when it starts."""
    c, before = _attached(busybox_container, machine, "10.86.0")
    subprocess.run(["docker", "stop", "-t", "0", c.name], check=True, capture_output=True)
    gone = machine(str(BIN / "netplumb"), "gc").stdout
    assert "attachment" not in gone, gone
    subprocess.run(["docker", "start", c.name], check=True, capture_output=True)
    out = machine(str(BIN / "netplumb"), "reconcile").stdout
    assert f"restored eth1 of {c.name}" in out
    # gc removed the bridge once no port was left on it; the restore made it again, without
    # the address this test had given it
    machine("ip", "addr", "replace", "10.86.0.1/24", "dev", "br-86")
    assert _back(c, machine, "10.86.0", before["address"], timeout=10)
    subprocess.run(["docker", "rm", "-f", c.name], check=True, capture_output=True)
    assert (
        f"removed attachment docker:{c.id[:12]}@eth1" in machine(str(BIN / "netplumb"), "gc").stdout
    )


def _resolv(web: str) -> str:
    return subprocess.run(
        ["docker", "exec", web, "cat", "/etc/resolv.conf"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_docker_guest_asks_the_networks_name_server_also_after_a_restart(
    machine: _Machine, tmp_path: Path
) -> None:
    """A Docker container netplumb put on its network (and on no Docker network) resolves the
    network's members by name through netplumb's server; Docker writes its resolv.conf again
    on a restart, and ``reconcile`` (what ``watch`` runs) puts netplumb's back."""
    db, web, path = _linked_project(machine, tmp_path)
    try:
        search = [
            ln
            for ln in Path("/etc/resolv.conf").read_text().splitlines()
            if ln.split()[:1] in (["search"], ["domain"])
        ]
        lines = ["nameserver 10.89.0.1", "nameserver fd89:6e70:6c62::1", *search]
        ours = "\n".join([*lines, "options ndots:0"]) + "\n"
        assert _resolv(web) == ours
        rows = json.loads(machine(str(BIN / "netplumb"), "ps", "--json").stdout)
        addr = next(str(r["addresses"][0]) for r in rows if r["name"] == db).split("/")[0]
        found = subprocess.run(
            ["docker", "exec", web, "nslookup", "-type=a", db, "10.89.0.1"],
            capture_output=True,
            text=True,
        ).stdout
        assert f"Address: {addr}" in found, found
        subprocess.run(["docker", "restart", "-t", "0", web], check=True, capture_output=True)
        assert _resolv(web) != ours  # Docker's again
        machine(str(BIN / "netplumb"), "reconcile")
        assert _resolv(web) == ours
    finally:
        machine(str(BIN / "netplumb"), "down", "-f", str(path), check=False)
        subprocess.run(["docker", "rm", "-f", web], capture_output=True, check=False)


def test_a_docker_guest_on_a_docker_network_keeps_dockers_resolver_and_is_told_once(
    busybox_container: BusyboxFactory, machine: _Machine
) -> None:
    """On a user-defined Docker network a container has Docker's embedded server (names of
    Docker's network): netplumb leaves its resolv.conf alone and says so, once."""
    net = f"npt-dn{secrets.token_hex(2)}"
    subprocess.run(["docker", "network", "create", net], check=True, capture_output=True)
    name = ""
    try:
        name = busybox_container("dn", network=net).name
        before = _resolv(name)
        assert "127.0.0.11" in before
        np = str(BIN / "netplumb")
        machine(np, "network", "create", "lan1", "--subnet", "10.83.0.0/24")
        first = machine(np, "attach", name, "np-lan1", "--ip", "10.83.0.5/24")
        assert first.stderr.count(f"Docker container {name} is on Docker network {net}") == 1
        assert "keeps Docker's name server" in first.stderr
        second = machine(np, "attach", name, "np-lan1", "--ip", "10.83.0.6/24", "-i", "eth2")
        assert "Docker network" not in second.stderr  # once
        assert _resolv(name) == before
    finally:
        if name:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", net], capture_output=True, check=False)
