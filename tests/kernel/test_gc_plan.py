"""``netplumb gc`` as a plan: ``--dry-run`` prints what ``gc`` removes and changes nothing;
``gc`` finds a dead guest's leases in every allocator table (a network's addresses and the
LAN pool, whose holders are the guest's attach records ``<guest>@<ifname>``).

The oracle is the record store's own files (``leases.d/<table>/<key>``, symbolic links named
after the lease and pointing at the owner) and ``ip -j``, read without netplumb's code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel.lanlab import SUBNET, LanLab, sh

pytestmark = pytest.mark.kernel

POOL = ["pool", "set", f"{SUBNET}.0/24", "--range", f"{SUBNET}.200-{SUBNET}.239"]


def _held(lab: LanLab) -> dict[tuple[str, str], str]:
    """(table, key) -> owner, every lease of the lab's record store."""
    top = Path(lab.state) / "leases.d"
    out = {}
    for table in top.iterdir() if top.is_dir() else []:
        if table.is_dir():
            for entry in table.iterdir():
                if entry.is_symlink():
                    out[(table.name, entry.name)] = os.readlink(entry)
    return out


def test_gc_releases_a_dead_guests_leases_in_every_table(lan: LanLab) -> None:
    lan.lan_cmd("macvlan", "phys0")
    lan.lan_cmd(*POOL)
    lan.netplumb("network", "create", "gcn", "--subnet", "10.61.0.0/24")
    dead, live = lan.netns("gcdead"), lan.netns("gclive")
    assert lan.lan_cmd("attach", dead).stdout.strip() == f"{SUBNET}.200"
    assert lan.lan_cmd("attach", live).stdout.strip() == f"{SUBNET}.201"
    lan.netplumb("attach", dead, "np-gcn", "-i", "eth2", "--ip", "10.61.0.5/24")
    lan.netplumb("attach", live, "np-gcn", "-i", "eth2", "--ip", "10.61.0.6/24")
    held = _held(lan)
    mine = {k: o for k, o in held.items() if o.startswith(f"netns:{dead}:")}
    assert set(mine) == {("%lan", f"{SUBNET}.200"), ("gcn", "10.61.0.5")}, held
    assert mine[("%lan", f"{SUBNET}.200")].endswith("@eth1")

    sh("ip", "netns", "del", dead)
    plan = lan.netplumb("gc", "--dry-run").stdout
    assert f"{SUBNET}.200 in the LAN pool" in plan and "10.61.0.5 in network gcn" in plan
    assert _held(lan) == held  # a dry run changes nothing

    out = lan.netplumb("gc").stdout.splitlines()
    assert any(f"removed address 10.61.0.5 of netns:{dead}:" in ln for ln in out), out
    assert any(f"removed address {SUBNET}.200 in the LAN pool of netns:{dead}:" in ln for ln in out)
    left = _held(lan)
    assert {k: o for k, o in left.items() if o.startswith(f"netns:{dead}:")} == {}
    assert left[("%lan", f"{SUBNET}.201")].startswith(f"netns:{live}:")
    assert left[("gcn", "10.61.0.6")].startswith(f"netns:{live}:")
    assert lan.addrs(live, "eth2", "4") == ["10.61.0.6/24"]
    assert lan.addrs(live, "eth1", "4") == [f"{SUBNET}.201/24"]
    assert not (Path(lan.state) / "leases.by-owner").exists() or not [
        p for p in (Path(lan.state) / "leases.by-owner").iterdir() if dead in p.name
    ]
    assert "removed" not in lan.netplumb("gc").stdout  # nothing more to collect

    lan.lan_cmd("detach", live)
    lan.netplumb("detach", live, "eth2")
    lan.netplumb("network", "rm", "gcn")


def test_rm_prints_and_releases_a_hosts_lan_lease(lan: LanLab) -> None:
    """``rm`` executes the plan ``rm --dry-run`` prints, the LAN pool's lease included (held
    by the host's attach record)."""
    lan.lan_cmd("macvlan", "phys0")
    lan.lan_cmd(*POOL)
    lan.netplumb("run", "--network", "none", "--name", "rmlan", "--", "sleep", "1000")
    assert lan.lan_cmd("attach", "rmlan").stdout.strip() == f"{SUBNET}.200"
    assert _held(lan)[("%lan", f"{SUBNET}.200")] == "host:rmlan@eth1"
    plan = lan.netplumb("rm", "rmlan", "--dry-run").stdout.splitlines()
    assert plan == [
        "remove rmlan",
        "  GUEST: ip link del eth1",
        f"  release the leases of host:rmlan@eth1: {SUBNET}.200 in the LAN pool",
        "  stop host rmlan (its netns and the veth ends in it go with it)",
    ]
    assert ("%lan", f"{SUBNET}.200") in _held(lan)  # a dry run changes nothing
    assert lan.netplumb("rm", "-f", "rmlan").stdout == "rmlan\n"
    assert _held(lan) == {}
    assert not (Path(lan.state) / "hosts" / "rmlan").exists()
