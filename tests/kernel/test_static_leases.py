"""Static pipework addresses on a netplumb network's bridge are leased: never given twice."""

from __future__ import annotations

import pytest

from kernel.attachlab import Lab

pytestmark = pytest.mark.kernel


def test_a_static_address_is_leased_and_released(lab: Lab) -> None:
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    lab.netplumb("network", "create", "d", "--subnet", "10.2.0.0/16", "--bridge", "br1")
    lab.pipework("br1", g1, "10.2.0.11/16")
    proc = lab.pipework("br1", g2, "10.2.0.11/16", check=False)
    assert proc.returncode == 1
    assert "address 10.2.0.11 is already in use in network d" in proc.stderr
    assert [ln["ifname"] for ln in lab.links(g2)] == ["lo"]  # nothing made
    # a host joining that network is not given the leased address either
    lab.netplumb(
        "run",
        "--network",
        "d",
        "--name",
        "h",
        "--ip",
        "10.2.0.11",
        "--",
        "sleep",
        "100",
        check=False,
    )
    assert "h" not in lab.netplumb("ps").stdout
    lab.netplumb("detach", g1, "eth1")
    lab.pipework("br1", g2, "10.2.0.11/16")
    assert lab.addrs(g2, "eth1", "4") == ["10.2.0.11/16"]
