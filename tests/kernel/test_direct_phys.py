"""pipework --direct-phys: the host interface itself moves into the guest, and comes back."""

from __future__ import annotations

import pytest

from kernel.attachlab import Lab, sh

pytestmark = pytest.mark.kernel


def test_direct_phys_moves_the_interface_and_detach_returns_it(lab: Lab) -> None:
    lan, guest = lab.netns("lan"), lab.netns("g")
    lab.veth(lab.host, "phys0", lan, "lanp")
    sh("ip", "-n", lan, "addr", "add", "192.168.77.1/24", "dev", "lanp")
    before = lab.link(lab.host, "phys0")
    assert before is not None
    lab.pipework(
        "--direct-phys", "phys0", "-i", "eth3", guest, "192.168.77.2/24", "02:00:00:00:77:02"
    )
    assert lab.link(lab.host, "phys0") is None  # gone from the host
    moved = lab.link(guest, "eth3")
    assert moved is not None and moved["address"] == "02:00:00:00:77:02"
    assert "UP" in moved["flags"]
    assert lab.addrs(guest, "eth3", "4") == ["192.168.77.2/24"]
    assert lab.ping(guest, "192.168.77.1")
    lab.netplumb("detach", guest, "eth3")
    back = lab.link(lab.host, "phys0")
    assert back is not None and back["address"] == before["address"]  # its own MAC again
    assert lab.link(guest, "eth3") is None
    assert lab.addrs(lab.host, "phys0", "4") == []  # the guest's address did not come along


def test_direct_phys_refuses_a_bridge_and_changes_nothing(lab: Lab) -> None:
    guest = lab.netns("g")
    lab.bridge("brx")
    proc = lab.pipework("--direct-phys", "brx", guest, "10.9.9.2/24", check=False)
    assert proc.returncode == 2
    assert "is a bridge" in proc.stderr
    assert lab.link(lab.host, "brx") is not None
    assert [ln["ifname"] for ln in lab.links(guest)] == ["lo"]
