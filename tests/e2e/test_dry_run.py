"""``--dry-run`` of every changing command prints its plan and changes nothing.

The oracle is not netplumb's code: ``ip -j`` dumps of links, addresses and routes, ``nft -j``,
the processes of the machine, and every file (name and content) of the state directory, taken
before and after the dry runs, must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from e2e.test_project import Machine, machine, small
from netplumb.model.mac import bridge_mac

pytestmark = pytest.mark.kernel

__all__ = ["machine"]  # the fixture, shared with test_project.py


def snapshot(m: Machine) -> dict[str, object]:
    """What a change would show, without what the kernel changes by itself (counters, carrier,
    an IPv6 address leaving its duplicate address detection)."""

    def ip(*args: str) -> list[Any]:
        out = subprocess.run(
            ["ip", "-n", m.ns, "-j", "-d", *args], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out) if out.strip() else []

    links = sorted(
        (
            ln["ifname"],
            ln.get("linkinfo", {}).get("info_kind"),
            ln.get("master"),
            ln["address"],
            ln["mtu"],
            ln.get("ifalias"),
        )
        for ln in ip("link")
    )
    addresses = sorted(
        (a["ifname"], x["local"], x["prefixlen"]) for a in ip("addr") for x in a["addr_info"]
    )
    routes = sorted(
        (r["dst"], r.get("gateway"), r.get("dev")) for r in ip("route") + ip("-6", "route")
    )

    files = {}
    for root, _dirs, names in os.walk(m.state):
        for name in names:
            p = Path(root) / name
            files[str(p.relative_to(m.state))] = (
                os.readlink(p) if p.is_symlink() else p.read_bytes()
            )
    return {
        "links": links,
        "addresses": addresses,
        "routes": routes,
        "nft": m.sh("nft -j list ruleset"),
        "processes": m.processes(),
        "files": files,
    }


def test_dry_runs_print_their_plans_and_change_nothing(machine: Machine) -> None:
    path = small(machine)
    machine.np("up", "-f", path)
    machine.np("network", "create", "spare", "--subnet", "10.93.0.0/24")
    before = snapshot(machine)

    up = machine.np("up", "-f", small(machine, mode="b"), "--dry-run").stdout
    assert "keep db (up to date)" in up and "remove app2 (changed)" in up
    assert "GUEST: env DB_PORT_7000_TCP_ADDR=" in up  # the fine-grained steps under each
    assert "master np0 up type veth peer eth0 netns GUEST" in up
    assert "nft: publish :18001 to " in up

    down = machine.np("down", "-f", path, "--dry-run").stdout
    assert "remove db (down)" in down and "remove network back" in down
    assert "ip link del br-shop" in down

    created = machine.np("network", "create", "other", "--subnet", "10.94.0.0/24", "--dry-run")
    assert created.stdout.splitlines()[:3] == [
        "record network other (10.94.0.0/24 on np-other)",  # first: a kill -9 leaves it to rm
        f"ip link add np-other address {bridge_mac('np-other').hex(':')} mtu 1500 type bridge"
        " && ip link set np-other up",
        "ip addr add 10.94.0.1/24 dev np-other",
    ]
    removed = machine.np("network", "rm", "spare", "--dry-run").stdout
    assert removed.splitlines() == [
        "ip link del np-spare",
        "forget network spare (its record and address leases)",
        "nft: drop network spare's rules",
    ]
    refused = machine.np("network", "rm", "back", "--dry-run", check=False)
    assert refused.returncode != 0 and "has active endpoints" in refused.stderr

    published = machine.np("publish", "app1", "18500:7000", "--dry-run").stdout
    assert published.startswith("nft: publish :18500 to 10.")
    unpublished = machine.np("unpublish", "app1", "7000", "--dry-run").stdout
    assert "nft: unpublish " in unpublished and ":18000 to " in unpublished
    missing = machine.np("unpublish", "app1", "9999", "--dry-run", check=False)
    assert missing.stderr.strip() == "Error: No public port '9999' published for app1"

    detached = machine.np("detach", "db", "eth1", "--dry-run").stdout
    assert detached.startswith("ip link del ") and "the veth of GUEST's eth1" in detached
    rm = machine.np("rm", "app2", "--dry-run").stdout
    assert rm.splitlines()[0] == "remove app2"
    assert "stop host app2" in rm and "release " in rm

    assert snapshot(machine) == before
    machine.np("network", "rm", "spare")
    machine.np("down", "-f", path)
    machine.assert_empty()
