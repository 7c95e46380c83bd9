"""The plans of ``network create``/``rm`` and ``publish``/``unpublish`` (plan/networks.py,
plan/ports.py): what they refuse, word for word, and what they leave out because the kernel
or the records already have it. Pure: no root."""

from __future__ import annotations

import pytest

from netplumb.errors import Conflict, InvalidValue, NetplumbError
from netplumb.model.ip import Interface
from netplumb.model.mac import bridge_mac
from netplumb.model.names import network_mark
from netplumb.model.network import Network, make_network
from netplumb.model.ports import parse_port_spec
from netplumb.plan.actions import CreateBridge
from netplumb.plan.networks import (
    BridgeAddress,
    BridgeSeen,
    BridgeUp,
    DeleteBridge,
    ForgetNetwork,
    Forwarding,
    NetworkRules,
    RecordNetwork,
    kernel_steps,
    plan_create,
    plan_remove,
)
from netplumb.plan.ports import plan_publish, plan_unpublish

NET = make_network("lab", "np-lab", "10.94.0.0/24", subnet6="fd94::/64")


def seen(alias: str | None = None, up: bool = True, *addrs: Interface) -> BridgeSeen:
    return BridgeSeen("bridge", alias or network_mark("lab"), up, frozenset(addrs))


def test_a_new_network_is_recorded_first_and_its_rules_come_last() -> None:
    steps = plan_create(NET, None, [], None, [])
    assert steps[0] == RecordNetwork(NET)
    assert steps[1] == CreateBridge("np-lab", NET.mtu, bridge_mac("np-lab"))
    assert steps[-1] == NetworkRules("lab", ("10.94.0.0/24", "fd94::/64"), "np-lab")


def test_an_existing_network_plans_only_what_its_kernel_side_lacks() -> None:
    gw4, gw6 = NET.gateways
    nat = [Interface(ip, 32) for ip in NET.nat_sources]
    assert [str(a) for a in nat] == ["10.94.0.254/32", "10.94.0.253/32", "10.94.0.252/32"]
    steps = plan_create(NET, NET, [NET], seen(None, False, gw4, nat[0]), [])
    assert steps == [
        BridgeAddress("np-lab", gw6),
        BridgeAddress("np-lab", nat[1]),
        BridgeAddress("np-lab", nat[2]),
        BridgeUp("np-lab"),
        Forwarding("np-lab", 4),
        Forwarding("np-lab", 6),
    ]
    assert kernel_steps(NET, seen(None, True, gw4, gw6, *nat)) == [
        Forwarding("np-lab", 4),
        Forwarding("np-lab", 6),
    ]


def test_create_refuses_in_the_commands_words() -> None:
    other = make_network("lab", "np-lab", "10.95.0.0/24")
    with pytest.raises(Conflict, match=r"^network lab exists with another definition "):
        plan_create(NET, other, [other], None, [])
    same_bridge = make_network("web", "np-lab", "10.96.0.0/24")
    with pytest.raises(Conflict) as exc:
        plan_create(NET, None, [same_bridge], None, [])
    assert str(exc.value) == "network lab clashes with network web (10.96.0.0/24 on np-lab)"
    overlapping = make_network("web", "np-web", "10.94.0.128/25")
    with pytest.raises(Conflict, match="clashes with network web"):
        plan_create(NET, None, [overlapping], None, [])
    machine = [("eth0", Interface.parse("10.94.0.7/16"))]
    with pytest.raises(Conflict) as exc:
        plan_create(NET, None, [], None, machine)
    assert str(exc.value) == (
        "cannot create network lab: 10.94.0.1/24 overlaps 10.94.0.7/16 on eth0 "
        "(choose another subnet)"
    )
    # loopback and IPv6 link-local addresses never count
    fine = [("lo", Interface.parse("127.0.0.1/8")), ("eth0", Interface.parse("fe80::1/64"))]
    assert plan_create(NET, None, [], None, fine)[0] == RecordNetwork(NET)
    with pytest.raises(Conflict) as exc:
        plan_create(NET, None, [], BridgeSeen("veth", None, True, frozenset()), [])
    assert str(exc.value) == 'cannot use "np-lab" for network lab: it is a veth, not a bridge'
    with pytest.raises(Conflict) as exc:
        plan_create(NET, None, [], seen("someone"), [])
    assert str(exc.value) == (
        'cannot use bridge "np-lab" for network lab: it is not netplumb\'s (someone)'
    )


def test_remove_deletes_only_a_bridge_that_carries_the_networks_mark() -> None:
    assert plan_remove("lab", NET, [], seen()) == [
        DeleteBridge("np-lab"),
        ForgetNetwork("lab"),
        NetworkRules("lab", (), "np-lab", add=False),
    ]
    assert DeleteBridge("np-lab") not in plan_remove("lab", NET, [], seen("netplumb:bridge"))
    assert DeleteBridge("np-lab") not in plan_remove("lab", NET, [], None)
    with pytest.raises(NetplumbError, match=r"^network nope not found$"):
        plan_remove("nope", None, [], None)
    with pytest.raises(Conflict) as exc:
        plan_remove("lab", NET, ["host:b", "host:a", "host:b"], seen())
    assert str(exc.value) == "network lab has active endpoints: host:a, host:b"


def test_publish_refuses_in_the_commands_words() -> None:
    both = {4: "10.94.0.2", 6: "fd94::2"}
    with pytest.raises(InvalidValue, match=r"IPv6 loopback cannot be forwarded by the kernel"):
        plan_publish("web", parse_port_spec("[::1]:80:80"), both)
    with pytest.raises(NetplumbError) as exc:
        plan_publish("web", parse_port_spec("80"), {})
    assert str(exc.value) == "cannot publish ports of web: it has no address the machine reaches"
    with pytest.raises(InvalidValue) as exc:
        plan_publish("web", parse_port_spec("[::]:90:90"), {4: "10.94.0.2"})
    assert str(exc.value) == "cannot publish [::]:90:90/tcp: web has no IPv6 address"
    assert plan_publish("web", [], {}) == []
    (one,) = plan_publish("web", parse_port_spec("80"), {4: "10.94.0.2"})
    assert [str(ip) for ip in one.ips] == ["10.94.0.2"]  # the families the guest has


def test_unpublish_plans_the_bindings_its_mappings_name() -> None:
    def binding(port: int, host_ip: str | None, proto: str = "tcp") -> dict[str, object]:
        family = 6 if host_ip and ":" in host_ip else 4
        return {
            "family": family,
            "host_ip": host_ip,
            "host_port": port,
            "container_ip": "10.94.0.2",
            "container_port": 80,
            "proto": proto,
        }

    bs = [binding(8080, None), binding(8081, "127.0.0.1"), binding(8082, None, "udp")]
    assert [a.binding for a in plan_unpublish(bs, parse_port_spec("80"))] == bs[:2]
    assert [a.binding for a in plan_unpublish(bs, parse_port_spec("8081:80"))] == [bs[1]]
    assert [a.binding for a in plan_unpublish(bs, parse_port_spec("127.0.0.1::80"))] == [bs[1]]
    assert plan_unpublish(bs, parse_port_spec("81")) == []


def test_a_bridge_made_without_a_fixed_address_gets_it() -> None:
    """A bridge's address must not follow its ports (guests' ARP caches keep the old one)."""
    from netplumb.plan.networks import BridgeMac, kernel_steps

    fixed = bridge_mac("np-lab")
    assert fixed[0] & 0x02 and not fixed[0] & 0x01  # locally administered, unicast
    assert fixed == bridge_mac("np-lab") != bridge_mac("np-lab2")
    gws = NET.gateways
    old = BridgeSeen("bridge", network_mark("lab"), True, frozenset(gws), b"\x0a" * 6)
    assert kernel_steps(NET, old)[0] == BridgeMac("np-lab", fixed)
    assert str(kernel_steps(NET, old)[0]) == f"ip link set np-lab address {fixed.hex(':')}"
    good = BridgeSeen("bridge", network_mark("lab"), True, frozenset(gws), fixed)
    assert not any(isinstance(a, BridgeMac) for a in kernel_steps(NET, good))


def test_a_network_recorded_before_nat_sources_is_repaired_as_it_was_recorded() -> None:
    # ``network create`` again with the same definition: the same network, not a conflict,
    # and its kernel side as its record says (``ensure_kernel`` adopts the NAT sources)
    old = Network.from_record({k: v for k, v in NET.to_record().items() if k != "nat_sources"})
    gw4, gw6 = NET.gateways
    assert plan_create(NET, old, [old], seen(None, True, gw4, gw6), []) == [
        Forwarding("np-lab", 4),
        Forwarding("np-lab", 6),
    ]
