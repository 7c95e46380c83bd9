"""Lightweight hosts: run, ps, logs, exec, rm, checked with ip -j, /proc and real traffic.

Every test runs netplumb inside a throwaway "machine" namespace with its own state directory,
so the machine's interfaces and netplumb state are never touched.
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import PIPEWORK, Lab

pytestmark = pytest.mark.kernel


class Machine(Lab):
    """A namespace playing a whole machine, with netplumb's state kept in a temporary dir."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, host="m")
        self.ns = self.host

    def env(self) -> dict[str, str]:
        return self.environ()

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.in_host(*argv, check=check)

    def np(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.netplumb(*args, check=check)

    def ps(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = json.loads(self.np("ps", "--json").stdout)
        return rows


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    m = Machine(tmp_path)
    try:
        yield m
    finally:
        m.close()


def _proc_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _holders(state: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", "^netplumb-hold"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    # only the holders of this machine's hosts: their records name them
    mine = set()
    for rec in (state / "hosts").glob("*") if (state / "hosts").exists() else []:
        mine.add(rec.name)
    return pids if mine else []


def _wait(cond: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return True
        time.sleep(0.05)
    return False


def test_run_gives_own_namespaces_files_and_environment(machine: Machine) -> None:
    machine.np(
        "run",
        "--network",
        "none",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "-e",
        "FOO=bar",
        "-e",
        "EMPTY=",
        "--",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    )
    [row] = machine.ps()
    assert row["name"] == "web" and row["state"] == "running"
    pid = int(str(row["pid"]))
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"FOO=bar" in environ and b"EMPTY=" in environ and b"HOSTNAME=webhost" in environ
    # its own network namespace, with only loopback, up
    assert os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    links = json.loads(machine.np("exec", "web", "--", "ip", "-j", "link").stdout)
    assert [(ln["ifname"], "UP" in ln["flags"]) for ln in links] == [("lo", True)]
    assert machine.np("exec", "web", "--", "hostname").stdout.strip() == "webhost"
    hosts = machine.np("exec", "web", "--", "cat", "/etc/hosts").stdout
    assert "127.0.0.1\tlocalhost" in hosts and hosts.rstrip().endswith("127.0.1.1\twebhost")
    assert Path("/etc/hosts").read_text() != hosts  # the machine's own file is untouched
    resolv = machine.np("exec", "web", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127." not in resolv
    assert machine.np("exec", "web", "--", "sh", "-c", "echo $FOO").stdout == "bar\n"
    assert _wait(lambda: machine.np("logs", "web").stdout == "started\n")


def test_hosts_talk_over_an_attached_bridge(machine: Machine) -> None:
    machine.np(
        "run",
        "--network",
        "none",
        "--name",
        "srv",
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        "0.0.0.0",
    )
    machine.np("run", "--network", "none", "--name", "cli", "--", "sleep", "1000")
    machine.run(PIPEWORK, "br0", "srv", "10.31.0.2/24")
    machine.run(PIPEWORK, "br0", "cli", "10.31.0.3/24")
    rows = {str(r["name"]): r for r in machine.ps()}
    assert rows["srv"]["addresses"] == ["10.31.0.2/24"]
    ok = _wait(
        lambda: (
            machine.np(
                "exec",
                "cli",
                "--",
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://10.31.0.2:8080/",
                check=False,
            ).stdout
            == "200"
        ),
        timeout=10,
    )
    assert ok
    veths = [
        ln for ln in json.loads(machine.run("ip", "-j", "link").stdout) if ln.get("master") == "br0"
    ]
    assert len(veths) == 2
    machine.np("rm", "srv", "cli")
    left = [ln["ifname"] for ln in json.loads(machine.run("ip", "-j", "link").stdout)]
    assert not any(name.startswith("veth") for name in left)
    assert machine.ps() == []


def test_exited_host_keeps_its_network_until_removed(machine: Machine) -> None:
    machine.np("run", "--network", "none", "--name", "once", "--", "sh", "-c", "echo bye")
    assert _wait(lambda: machine.ps()[0]["state"] == "exited")
    machine.run(PIPEWORK, "br0", "once", "10.32.0.2/24")
    addrs = json.loads(machine.np("exec", "once", "--", "ip", "-j", "addr", "show", "eth1").stdout)
    assert addrs[0]["addr_info"][0]["local"] == "10.32.0.2"
    assert (
        machine.run("ping", "-c1", "-W2", "10.32.0.2", check=False).returncode != 0
    )  # no route from the machine
    machine.np("rm", "once")
    assert machine.ps() == []


def test_rm_stops_the_whole_process_group_and_the_holder(machine: Machine) -> None:
    machine.np(
        "run",
        "--network",
        "none",
        "--name",
        "tree",
        "--",
        "sh",
        "-c",
        "sleep 1000 & sleep 1000 & wait",
    )
    [row] = machine.ps()
    pid = int(str(row["pid"]))

    def workers() -> list[int]:  # the holder is a child too; leave it out
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return [
            k
            for k in kids
            if not Path(f"/proc/{k}/cmdline").read_bytes().startswith(b"netplumb-hold")
        ]

    assert _wait(lambda: len(workers()) == 2)
    children = workers()
    # this host's holder, from its record: counting holders machine-wide would count those of
    # whatever else runs on the machine meanwhile
    holder = int(marshal.loads((machine.state / "hosts" / "tree").read_bytes())["holder"])
    assert Path(f"/proc/{holder}/cmdline").read_bytes().startswith(b"netplumb-hold")
    machine.np("rm", "tree")
    assert not _proc_exists(pid)
    assert not any(_proc_exists(c) for c in children)
    assert not _proc_exists(holder)
    assert not list((machine.state / "hosts").glob("*"))
    assert not list((machine.state / "logs").glob("*"))


def test_rm_force_kills_a_process_that_ignores_sigterm(machine: Machine, tmp_path: Path) -> None:
    """-f skips SIGTERM and its 10 s grace period: the command gets SIGKILL at once. Told by
    what the command saw (a SIGTERM it would have noted), not by the clock."""
    noted = tmp_path / "got-term"
    script = f"trap 'echo term >> {noted}' TERM; while :; do sleep 1; done"
    machine.np("run", "--name", "stubborn", "--", "sh", "-c", script)
    pid = int(str(machine.ps()[0]["pid"]))
    machine.np("rm", "-f", "stubborn")
    assert not _proc_exists(pid)
    assert not noted.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--name", "bad name", "--", "true"], 'invalid host name "bad name"'),
        (["run", "--name", "errnocommand"], "no command given"),
        (
            ["run", "--name", "errnosuchcmd", "--", "/nonexistent/cmd"],
            "cannot start host errnosuchcmd: /nonexistent/cmd: No such file or directory",
        ),
        (["logs", "ghost"], "No such host: ghost"),
        (["rm", "ghost"], "No such host: ghost"),
        (["exec", "ghost", "--", "true"], "No such host: ghost"),
    ],
)
def test_errors_are_one_line_and_change_nothing(
    machine: Machine, argv: list[str], message: str
) -> None:
    proc = machine.np(*argv, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert machine.ps() == []
    assert (
        not list((machine.state / "hosts").glob("*"))
        if (machine.state / "hosts").exists()
        else True
    )
    # no holder left for the host the command tried to make (names no other test uses: a
    # machine-wide count of holders would count whatever else runs meanwhile)
    name = argv[argv.index("--name") + 1] if "--name" in argv else "ghost"
    left = subprocess.run(
        ["pgrep", "-f", f"^netplumb-hold {name}( |$)"], capture_output=True, text=True
    ).stdout
    assert left == ""


def test_a_name_in_use_is_refused(machine: Machine) -> None:
    machine.np("run", "--name", "dup", "--", "sleep", "1000")
    proc = machine.np("run", "--name", "dup", "--", "sleep", "1000", check=False)
    assert proc.returncode == 1
    assert 'The host name "dup" is already in use' in proc.stderr
    assert len(machine.ps()) == 1


def test_gc_removes_a_host_whose_namespaces_are_lost(machine: Machine) -> None:
    machine.np("run", "--network", "none", "--name", "lost", "--", "sleep", "1000")
    machine.run(PIPEWORK, "br0", "lost", "10.33.0.2/24")
    pid = int(str(machine.ps()[0]["pid"]))
    # this host's holder, from its record (not a machine-wide pgrep: other holders come and go)
    holder = int(marshal.loads((machine.state / "hosts" / "lost").read_bytes())["holder"])
    os.kill(holder, 9)
    os.kill(pid, 9)
    assert _wait(lambda: machine.ps()[0]["state"] == "lost")
    out = machine.np("gc").stdout
    assert "removed host lost" in out
    assert machine.ps() == []
    links = [ln["ifname"] for ln in json.loads(machine.run("ip", "-j", "link").stdout)]
    assert "br0" not in links  # netplumb made it, it has no ports left


def test_rm_of_a_lost_host_stops_the_command_that_outlived_its_holder(machine: Machine) -> None:
    """A killed holder leaves the command running in the namespace (and keeping it alive):
    ``rm`` (and ``down``, which removes hosts the same way) stops it too."""
    machine.np("run", "--name", "orphan", "--", "sleep", "1000")
    pid = int(str(machine.ps()[0]["pid"]))
    holder = int(marshal.loads((machine.state / "hosts" / "orphan").read_bytes())["holder"])
    os.kill(holder, 9)
    assert _wait(lambda: machine.ps()[0]["state"] == "lost")
    assert _proc_exists(pid)
    machine.np("rm", "orphan")
    assert _wait(lambda: not _proc_exists(pid)), f"the command {pid} of a lost host still runs"
    assert machine.ps() == []


def test_run_joins_the_default_network_like_docker0(machine: Machine) -> None:
    machine.np("run", "--name", "a", "--", "sleep", "1000")
    machine.np("run", "--name", "b", "--hostname", "bee", "--", "sleep", "1000")
    rows = {str(r["name"]): r for r in machine.ps()}
    # dual stack, as the default network is: the IPv4 subnet and a unique local IPv6 one
    assert rows["a"]["addresses"] == ["10.89.0.2/16", "fd89:6e70:6c62::2/64"]
    assert rows["b"]["addresses"] == ["10.89.0.3/16", "fd89:6e70:6c62::3/64"]
    bridge = json.loads(machine.run("ip", "-j", "addr", "show", "np0").stdout)[0]
    # the gateway, and the NAT sources published ports' translated connections come from
    assert [(a["local"], a["prefixlen"]) for a in bridge["addr_info"] if a["family"] == "inet"] == [
        ("10.89.0.1", 16),
        ("10.89.255.254", 32),
        ("10.89.255.253", 32),
    ]
    link = json.loads(machine.run("ip", "-j", "link", "show", "np0").stdout)[0]
    assert link["ifalias"] == "netplumb:network:netplumb"
    routes = json.loads(machine.np("exec", "b", "--", "ip", "-j", "route").stdout)
    assert {"dst": "default", "gateway": "10.89.0.1"}.items() <= routes[0].items()
    assert (
        machine.np("exec", "b", "--", "cat", "/etc/hosts")
        .stdout.rstrip()
        .endswith("10.89.0.3\tbee")
    )
    ping = machine.np("exec", "a", "--", "ping", "-c1", "-W2", "10.89.0.3", check=False)
    assert ping.returncode == 0, ping.stdout
    local = machine.run("cat", "/proc/sys/net/ipv4/conf/np0/route_localnet").stdout.strip()
    assert local == "1"
    assert machine.run("cat", "/proc/sys/net/ipv4/conf/all/route_localnet").stdout.strip() == "0"
    machine.np("rm", "a")
    # the address goes back to the pool: the next host gets it again
    machine.np("run", "--name", "c", "--", "sleep", "1000")
    rows = {str(r["name"]): r for r in machine.ps()}
    assert rows["c"]["addresses"] == ["10.89.0.2/16", "fd89:6e70:6c62::2/64"]
    ping6 = machine.np("exec", "c", "--", "ping", "-c1", "-W2", "fd89:6e70:6c62::3", check=False)
    assert ping6.returncode == 0, ping6.stdout
