"""``runtime.remove_many``: many hosts removed at once, nothing left behind.

Each test runs netplumb inside a throwaway "machine" namespace with its own state directory.
The oracle is independent of netplumb: ``ip -j`` for links and addresses, ``nft -j`` for the
published ports, /proc for the processes, the state folders for records and leases.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import STOP, Lab, kill

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")

UP = """
import json, sys
from netplumb.ops import ports
from netplumb.ops import containers
from netplumb.hosts import runtime
from netplumb.model.ports import parse_port_spec
out = {}
with ports.batch():
    for i, name in enumerate(sys.argv[1].split(",")):
        argv = ["sh", "-c", sys.argv[2]] if sys.argv[2] else ["sleep", "1000"]
        published = parse_port_spec(f"{18080 + i}:80")
        r = containers.run(name, argv, publish=published, refresh_links=False)
        out[name] = {"pid": r["pid"], "holder": r["holder"]}
print(json.dumps(out))
"""

DOWN = """
import json, sys
from netplumb.hosts import runtime
print(json.dumps(runtime.remove_many(sys.argv[1].split(","), force=sys.argv[2] == "force")))
"""


class Machine(Lab):
    """A namespace playing a whole machine, with netplumb's state kept in a temporary dir."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, host="rm")
        self.ns = self.host
        self.pids: list[int] = []

    def run(self, *argv: str) -> str:
        return self.in_host(*argv, timeout=120).stdout

    def up(self, names: list[str], command: str = "") -> dict[str, dict[str, int]]:
        hosts: dict[str, dict[str, int]] = json.loads(
            self.run(PYTHON, "-c", UP, ",".join(names), command)
        )
        for pid in (p for h in hosts.values() for p in h.values()):
            self.pids.append(pid)  # whatever a failed test left running
            self.defer(f"process {pid}", functools.partial(kill, pid), STOP)
        return hosts

    def down(self, names: list[str], force: bool) -> list[str]:
        removed: list[str] = json.loads(
            self.run(PYTHON, "-c", DOWN, ",".join(names), "force" if force else "")
        )
        return removed

    def links(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["ip", "-n", self.ns, "-j", "-d", "link"], capture_output=True, text=True, check=True
        ).stdout
        links: list[dict[str, Any]] = json.loads(out)
        return links

    def veths(self) -> list[str]:
        return sorted(
            str(ln["ifname"])
            for ln in self.links()
            if ln.get("linkinfo", {}).get("info_kind") == "veth"
        )

    def dnat_rules(self) -> list[object]:
        """The published ports the kernel holds: the elements of netplumb's DNAT maps (the
        chain ``publish`` holds fixed lookups; a published port is one element)."""
        out = self.run("nft", "-j", "list", "ruleset")
        return [
            elem
            for item in json.loads(out)["nftables"]
            if "map" in item and item["map"]["name"].startswith("publish")
            for elem in item["map"].get("elem", [])
        ]

    def files(self, *parts: str) -> list[str]:
        d = self.state.joinpath(*parts)
        return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    m = Machine(tmp_path)
    try:
        yield m
    finally:
        m.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(") ")[2][0] != "Z"
    except OSError:
        return False


def test_remove_many_leaves_no_process_link_rule_lease_or_record(machine: Machine) -> None:
    names = [f"web{i}" for i in range(6)]
    # the command exits on SIGTERM by itself: the graceful path
    hosts = machine.up(names, "trap 'exit 0' TERM; while :; do sleep 0.2; done")
    # one host gets a second, pipework-style interface on another bridge
    subprocess.run(["ip", "-n", machine.ns, "link", "add", "npt-xbr", "type", "bridge"], check=True)
    machine.run(NETPLUMB, "attach", "web2", "npt-xbr", "--ip", "10.77.0.5/24", "-i", "eth1")
    assert len(machine.veths()) == 7
    assert len(machine.dnat_rules()) >= 6
    assert all(_running(p) for h in hosts.values() for p in h.values())
    pgrep = subprocess.run(["pgrep", "-f", "^netplumb-hold"], capture_output=True, text=True)
    assert {h["holder"] for h in hosts.values()} <= {int(p) for p in pgrep.stdout.split()}

    removed = machine.down([*names, "nosuchhost", "web3"], force=False)

    assert removed == names  # unknown names are skipped, repeated ones removed once
    assert not [p for h in hosts.values() for p in h.values() if _running(p)]
    pgrep = subprocess.run(["pgrep", "-f", "^netplumb-hold"], capture_output=True, text=True)
    assert not {h["holder"] for h in hosts.values()} & {int(p) for p in pgrep.stdout.split()}
    assert machine.veths() == []
    bridge = next(ln for ln in machine.links() if ln["ifname"] == "np0")  # the network stays
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert machine.dnat_rules() == []
    assert machine.files("hosts") == []
    assert machine.files("hosts.d") == []
    assert machine.files("attach") == []
    assert machine.files("attach.by-owner") == []
    assert machine.files("ports") == []
    assert machine.files("leases.d", "%ports") == []  # the host ports' table
    assert machine.files("leases.d", "netplumb") == []
    assert machine.files("leases.by-owner") == []


def test_remove_many_force_kills_commands_that_ignore_sigterm(machine: Machine) -> None:
    names = ["stub1", "stub2", "stub3"]
    hosts = machine.up(names, "trap '' TERM; while :; do sleep 0.2; done")
    assert machine.down(names, force=True) == names
    assert not [p for h in hosts.values() for p in h.values() if _running(p)]
    assert machine.veths() == []
    assert machine.dnat_rules() == []
    assert machine.files("leases.d", "netplumb") == []
    # the addresses are free again: new hosts get the lowest ones back
    again = machine.up(["next1"])
    addrs = machine.run(NETPLUMB, "inspect", "next1")
    assert "10.89.0.2" in addrs
    assert machine.down(["next1"], force=True) == ["next1"]
    assert not [p for p in again["next1"].values() if _running(p)]


def test_remove_many_of_nothing_changes_nothing(machine: Machine) -> None:
    hosts = machine.up(["keep"])
    assert machine.down(["gone1", "gone2"], force=False) == []
    assert all(_running(p) for p in hosts["keep"].values())
    assert len(machine.veths()) == 1
    assert machine.down(["keep"], force=True) == ["keep"]
