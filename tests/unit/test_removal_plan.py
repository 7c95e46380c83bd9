"""The actions of ``gc``'s plan (``plan/removal.py``): the lines ``--dry-run`` prints, the
``removed`` lines ``gc`` prints (the same words as before the plan), and which guest a lease
holder stands for."""

from __future__ import annotations

from netplumb.ops.gc import guest_of
from netplumb.plan.removal import (
    DeleteMarkedLink,
    ForgetAttachment,
    ReleaseLeases,
    ReleasePorts,
    RemoveLostHost,
    lease_text,
)


def test_a_lan_pool_holder_stands_for_its_guest() -> None:
    assert guest_of("netns:g1:3-4026532@eth1") == "netns:g1:3-4026532"
    assert guest_of("host:web@eth0") == "host:web"
    assert guest_of("host:web") == "host:web"
    assert guest_of("cni:abc:eth0") == "cni:abc:eth0"
    assert guest_of("arp:02:00:00:00:00:01") == "arp:02:00:00:00:00:01"  # an ARP hold
    assert guest_of("odd@") == "odd@"


def test_leases_read_by_table() -> None:
    assert lease_text("n1", "10.0.0.2") == "10.0.0.2 in network n1"
    assert lease_text("%lan", "10.77.0.200") == "10.77.0.200 in the LAN pool"
    assert lease_text("%cni-mv", "10.5.0.3") == "10.5.0.3 in CNI pool mv"


def test_release_leases_prints_one_line_and_keeps_gcs_words() -> None:
    action = ReleaseLeases("netns:g:1-2@eth1", (("n1", "10.0.0.2"), ("%lan", "10.77.0.200")))
    assert str(action) == (
        "release the leases of netns:g:1-2@eth1: 10.0.0.2 in network n1, "
        "10.77.0.200 in the LAN pool"
    )
    assert action.removed_lines == [
        "address 10.0.0.2 of netns:g:1-2@eth1",
        "address 10.77.0.200 in the LAN pool of netns:g:1-2@eth1",
    ]


def test_removed_lines_are_gcs_words() -> None:
    assert RemoveLostHost("lost").removed == "host lost"
    assert ReleasePorts("pid:1:2", 2).removed == "published ports of pid:1:2"
    assert ForgetAttachment("docker:ab@eth1", "veth1").removed == "attachment docker:ab@eth1"
    assert str(ForgetAttachment("docker:ab@eth1", "veth1")).startswith("ip link del veth1")
    assert DeleteMarkedLink("brgc", "netplumb:bridge", True).removed == "bridge brgc"
    assert DeleteMarkedLink("v1", "netplumb:pid:1:2", False).removed == "link v1"
