"""CNI DEL's plan (plan/cni.py), pure: built from the attachment's record alone."""

from __future__ import annotations

from netplumb.model.ip import IP, Interface
from netplumb.plan.cni import (
    ClaimAttachment,
    DelegateIpam,
    EnsureNetwork,
    LeaseCniAddress,
    PublishCniPorts,
    RefreshIsolation,
    plan_del,
)


def _plan(**kw: object) -> list[str]:
    args: dict[str, object] = {
        "network": "net1",
        "record": "c1@eth0",
        "owner": "cni:c1:eth0",
        "ifname": "eth0",
        "netns": "/run/netns/g1",
        "mode": "bridge",
        "veth": "npc0123456789ab",
        "attach_record": "netns:g1@eth0",
        "has_ports": False,
        "network_recorded": True,
        "ipam": None,
        "raw": None,
        "container_id": "c1",
        "isolated": False,
    }
    args.update(kw)
    return [str(a) for a in plan_del(**args)]  # type: ignore[arg-type]


def test_bridge_attachment_with_ports_and_isolation() -> None:
    assert _plan(has_ports=True, isolated=True) == [
        "GUEST: ip link del eth0; ip link del npc0123456789ab (if it carries netplumb's mark)",
        "nft: unpublish the published ports of cni:c1:eth0",
        "release the addresses of cni:c1:eth0 in network net1",
        "nft: refill isolated network net1's port set",
        "forget record cni/net1/c1@eth0",
    ]


def test_without_namespace_or_network_record_only_what_is_left() -> None:
    # containerd's DEL without CNI_NETNS, after the network's record went: the veth's host
    # end (derived from the attachment alone) and the record are all there is to remove
    assert _plan(netns="", network_recorded=False, attach_record=None) == [
        "ip link del npc0123456789ab (if it carries netplumb's mark)",
        "forget record cni/net1/c1@eth0",
    ]


def test_macvlan_with_delegated_ipam() -> None:
    assert _plan(mode="macvlan", veth=None, ipam="host-local") == [
        "GUEST: ip link del eth0",
        "release the addresses of cni:c1:eth0 in the pool of net1",
        "IPAM plugin host-local: DEL",
        "forget record cni/net1/c1@eth0",
    ]


def test_add_actions_read_as_lines() -> None:
    gw = Interface.parse("10.77.0.1/24")
    lines = [
        str(ClaimAttachment("net1", "c1@eth0")),
        str(EnsureNetwork("net1", "np-net1")),
        str(LeaseCniAddress("net1", "cni:c1:eth0", None, gw, pool=False)),
        str(LeaseCniAddress("net1", "cni:c1:eth0", IP.parse("10.77.0.9"), gw, pool=True)),
        str(DelegateIpam("host-local")),
        str(PublishCniPorts("cni:c1:eth0", 2)),
        str(RefreshIsolation("net1")),
    ]
    assert lines == [
        "record cni/net1/c1@eth0 (a second ADD of it fails)",
        "network net1: create it, or put its bridge np-net1 back",
        "lease the lowest free address (subnet of 10.77.0.1/24) in network net1 for cni:c1:eth0",
        "lease 10.77.0.9 (subnet of 10.77.0.1/24) in the pool of net1 for cni:c1:eth0",
        "IPAM plugin host-local: ADD",
        "nft: publish the 2 port mapping(s) of cni:c1:eth0",
        "nft: refill isolated network net1's port set",
    ]


def test_check_compares_what_add_made() -> None:
    from netplumb.plan.cni import plan_check

    a = Interface.parse("10.77.0.2/24")
    expected = plan_check(
        owner="cni:c1:eth0",
        ifname="eth0",
        mac="02:00:00:77:00:02",
        addresses=(a,),
        leased_in="net1",
        ports=1,
    )
    assert [str(x) for x in expected] == [
        "GUEST: ip link add eth0 address 02:00:00:77:00:02",
        "GUEST: ip addr add 10.77.0.2/24 dev eth0",
        "lease 10.77.0.2 (subnet of 10.77.0.2/24) in network net1 for cni:c1:eth0",
        "nft: publish the 1 port mapping(s) of cni:c1:eth0",
    ]
    macvlan = plan_check(owner="o", ifname="eth0", mac=None, addresses=(), leased_in=None, ports=0)
    assert [str(x) for x in macvlan] == ["GUEST: ip link add eth0"]
