"""netplumb networks (``netplumb.model.network``): validation, the record round trip, and address
allocation, with ``ipaddress`` as the oracle for the properties."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP, Interface
from netplumb.model.network import (
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    DEFAULT_SUBNET,
    Network,
    allocate,
    make_network,
    nat_sources_for,
)

# ------------------------------------------------------------------------------ make_network


@pytest.mark.parametrize(
    ("subnet", "gateway", "expected"),
    [
        ("10.89.0.0/16", None, "10.89.0.1/16"),  # the subnet's first address by default
        ("10.89.0.0/16", "10.89.255.254", "10.89.255.254/16"),
        ("192.168.7.0/24", "192.168.7.200", "192.168.7.200/24"),
        ("10.0.0.0/30", None, "10.0.0.1/30"),  # the smallest: a gateway and one guest
        ("10.0.0.0/30", "10.0.0.2", "10.0.0.2/30"),
        ("0.0.0.0/0", None, "0.0.0.1/0"),
        ("fd00:89::/64", None, "fd00:89::1/64"),
        ("fd00:89::/64", "fd00:89::ffff", "fd00:89::ffff/64"),
        ("fd00::/126", None, "fd00::1/126"),
    ],
)
def test_make_network(subnet: str, gateway: str | None, expected: str) -> None:
    net = make_network("demo", "np-demo", subnet, gateway)
    assert net == Network("demo", "np-demo", Interface.parse(expected)).with_nat_sources()
    assert net.subnet == subnet
    assert (net.isolation, net.mtu) == (False, 1500)


def test_make_network_keeps_isolation_and_mtu() -> None:
    net = make_network("iso-1", "np-iso", "10.90.0.0/24", isolation=True, mtu=9000)
    assert (net.isolation, net.mtu) == (True, 9000)
    assert make_network("a", "b", "10.0.0.0/30", mtu=68).mtu == 68
    assert make_network("a", "b", "10.0.0.0/30", mtu=65535).mtu == 65535


def test_the_default_network_is_valid() -> None:
    net = make_network(DEFAULT_NETWORK, DEFAULT_BRIDGE, DEFAULT_SUBNET)
    assert str(net.gateway) == "10.89.0.1/16"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "np-demo", "10.89.0.1/16"), "invalid subnet 10.89.0.1/16: host bits set"),
        (("demo", "np-demo", "fd00::1/64"), "invalid subnet fd00::1/64: host bits set"),
        (
            ("demo", "np-demo", "10.0.0.0/31"),
            "invalid subnet 10.0.0.0/31: too small for a gateway and a guest",
        ),
        (
            ("demo", "np-demo", "10.0.0.0/32"),
            "invalid subnet 10.0.0.0/32: too small for a gateway and a guest",
        ),
        (
            ("demo", "np-demo", "10.0.0.0"),  # no prefix length: a /32
            "invalid subnet 10.0.0.0: too small for a gateway and a guest",
        ),
        (
            ("demo", "np-demo", "fd00::/127"),
            "invalid subnet fd00::/127: too small for a gateway and a guest",
        ),
        (("demo", "np-demo", "10.89.0/16"), "invalid IP address: 10.89.0"),
        (("demo", "np-demo", "10.89.0.0/33"), "invalid prefix length /33 for 10.89.0.0"),
        (
            ("demo", "np-demo", "10.89.0.0/16", "10.1.0.1"),
            "invalid gateway 10.1.0.1: not a host address of 10.89.0.0/16",
        ),
        (
            ("demo", "np-demo", "10.89.0.0/16", "10.89.0.0"),
            "invalid gateway 10.89.0.0: not a host address of 10.89.0.0/16",
        ),
        (
            ("demo", "np-demo", "10.89.0.0/16", "10.89.255.255"),
            "invalid gateway 10.89.255.255: not a host address of 10.89.0.0/16",
        ),
        (
            ("demo", "np-demo", "10.89.0.0/16", "fd00::1"),
            "invalid gateway fd00::1: not a host address of 10.89.0.0/16",
        ),
        (
            ("demo", "np-demo", "fd00::/64", "fd01::1"),
            "invalid gateway fd01::1: not a host address of fd00::/64",
        ),
        (("demo", "np-demo", "10.89.0.0/16", "gw"), "invalid IP address: gw"),
        (("", "np-demo", "10.89.0.0/16"), "invalid network name: ''"),
        (("a b", "np-demo", "10.89.0.0/16"), "invalid network name: 'a b'"),
        (("a/b", "np-demo", "10.89.0.0/16"), "invalid network name: 'a/b'"),
        (("a:b", "np-demo", "10.89.0.0/16"), "invalid network name: 'a:b'"),
        # str.isalnum() is true for these, and nft refuses them in the isolation chain's name
        (("r\u00e9seau", "np-demo", "10.89.0.0/16"), "invalid network name: 'r\u00e9seau'"),
        (("net\u0662", "np-demo", "10.89.0.0/16"), "invalid network name: 'net\u0662'"),
        (
            ("demo", "np-demo-0123456789", "10.89.0.0/16"),
            "invalid bridge name 'np-demo-0123456789': longer than 15 bytes",
        ),
        (("demo", "", "10.89.0.0/16"), "invalid bridge name: empty"),
    ],
)
def test_make_network_refuses(args: tuple[str, ...], message: str) -> None:
    name, bridge, subnet, *gateway = args
    with pytest.raises(InvalidValue) as exc:
        make_network(name, bridge, subnet, gateway[0] if gateway else None)
    assert str(exc.value) == message


@pytest.mark.parametrize("mtu", [0, 67, 65536, -1500])
def test_make_network_refuses_mtu(mtu: int) -> None:
    with pytest.raises(InvalidValue) as exc:
        make_network("demo", "np-demo", "10.89.0.0/16", mtu=mtu)
    assert str(exc.value) == f"invalid MTU: {mtu}"


# ------------------------------------------------------------------------------ the record


@pytest.mark.parametrize(
    "net",
    [
        make_network("demo", "np-demo", "10.89.0.0/16"),
        make_network("iso.v6", "np-v6", "fd00:89::/64", "fd00:89::fe", True, 9000),
        Network("x", "br-x", Interface.parse("192.168.0.77/24")),
    ],
)
def test_record_round_trip(net: Network) -> None:
    rec = net.to_record()
    assert json.loads(json.dumps(rec)) == rec  # state files are JSON
    assert Network.from_record(rec) == net
    assert rec == {
        "name": net.name,
        "bridge": net.bridge,
        "gateway": str(net.gateway),
        "isolation": net.isolation,
        "mtu": net.mtu,
        **({"nat_sources": [str(ip) for ip in net.nat_sources]} if net.nat_sources else {}),
    }


def test_an_internal_network_says_so_in_its_record_and_only_then() -> None:
    net = make_network("back", "np-back", "10.8.0.0/24", internal=True)
    rec = net.to_record()
    assert rec["internal"] is True
    assert Network.from_record(json.loads(json.dumps(rec))) == net
    assert net != make_network("back", "np-back", "10.8.0.0/24")  # `up` sees the change
    assert "internal" not in make_network("back", "np-back", "10.8.0.0/24").to_record()
    assert not Network.from_record({**rec, "internal": False}).internal


def test_record_defaults_for_older_records() -> None:
    net = Network.from_record({"name": "demo", "bridge": "np-demo", "gateway": "10.89.0.1/16"})
    assert net == Network("demo", "np-demo", Interface.parse("10.89.0.1/16"), False, 1500)


def test_network_is_an_immutable_value() -> None:
    net = make_network("demo", "np-demo", "10.89.0.0/16")
    with pytest.raises(AttributeError, match="immutable"):
        net.mtu = 9000
    assert hash(net) == hash(make_network("demo", "np-demo", "10.89.0.0/16"))
    assert net != make_network("demo", "np-demo", "10.89.0.0/16", isolation=True)


def test_subnet_of_a_gateway_anywhere_in_it() -> None:
    assert Network("a", "b", Interface.parse("10.1.2.3/8")).subnet == "10.0.0.0/8"
    assert Network("a", "b", Interface.parse("fd00:1:2::3/32")).subnet == "fd00:1::/32"


# ---------------------------------------------------------------------------------- allocate


@pytest.mark.parametrize(
    ("gateway", "used", "expected"),
    [
        ("10.0.0.1/24", set(), "10.0.0.2"),
        ("10.0.0.1/24", {"10.0.0.2", "10.0.0.3"}, "10.0.0.4"),
        ("10.0.0.1/24", {"10.0.0.3"}, "10.0.0.2"),  # the lowest free, not after the highest
        ("10.0.0.5/24", set(), "10.0.0.1"),  # the gateway need not be first
        ("10.0.0.5/24", {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}, "10.0.0.6"),
        ("10.0.0.1/24", {"10.9.9.9", "fd00::2"}, "10.0.0.2"),  # others' addresses don't count
        ("10.0.0.1/30", set(), "10.0.0.2"),
        ("10.0.0.2/30", set(), "10.0.0.1"),
        ("10.89.0.1/16", {f"10.89.0.{i}" for i in range(2, 256)}, "10.89.1.0"),
        ("fd00::1/64", set(), "fd00::2"),
        ("fd00::1/126", {"fd00::2"}, "fd00::3"),  # IPv6 has no broadcast address
    ],
)
def test_allocate(gateway: str, used: set[str], expected: str) -> None:
    assert allocate(Interface.parse(gateway), used) == IP.parse(expected)


@pytest.mark.parametrize(
    ("gateway", "used", "message"),
    [
        ("10.0.0.1/30", {"10.0.0.2"}, "no free address left in 10.0.0.1/30"),
        ("10.0.0.2/30", {"10.0.0.1"}, "no free address left in 10.0.0.2/30"),
        (
            "10.0.0.1/28",
            {f"10.0.0.{i}" for i in range(16)},
            "no free address left in 10.0.0.1/28",
        ),
        ("fd00::1/126", {"fd00::2", "fd00::3"}, "no free address left in fd00::1/126"),
    ],
)
def test_allocate_exhausted(gateway: str, used: set[str], message: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        allocate(Interface.parse(gateway), used)
    assert str(exc.value) == message


def test_allocate_refuses_a_used_entry_that_is_no_address() -> None:
    with pytest.raises(InvalidValue, match=r"^invalid IP address: 10\.0\.0$"):
        allocate(Interface.parse("10.0.0.1/24"), {"10.0.0"})


# ------------------------------------------------------------------------------ properties


@st.composite
def v4_networks(draw: st.DrawFn) -> tuple[ipaddress.IPv4Network, Interface, set[str]]:
    prefixlen = draw(st.integers(23, 30))
    net = ipaddress.ip_network(
        (draw(st.integers(0, 2**32 - 1)) >> (32 - prefixlen) << (32 - prefixlen), prefixlen)
    )
    assert isinstance(net, ipaddress.IPv4Network)
    hosts = 2 ** (32 - prefixlen) - 2
    gateway = net.network_address + draw(st.integers(1, hosts))
    offsets = draw(st.sets(st.integers(0, hosts + 1), max_size=hosts + 2))
    used = {str(net.network_address + o) for o in offsets}
    if draw(st.booleans()):  # often a full subnet but for a few addresses
        used |= {str(a) for a in net.hosts()}
        used -= {str(a) for a in draw(st.sets(st.sampled_from(list(net.hosts())), max_size=2))}
    return net, Interface(IP(gateway.packed), prefixlen), used


@given(v4_networks())
def test_allocate_v4_takes_the_lowest_free_host_address(
    case: tuple[ipaddress.IPv4Network, Interface, set[str]],
) -> None:
    net, gateway, used = case
    taken = {ipaddress.ip_address(u) for u in used} | {ipaddress.ip_address(str(gateway.ip))}
    free = [a for a in net.hosts() if a not in taken]
    if not free:
        with pytest.raises(InvalidValue, match=r"^no free address left in "):
            allocate(gateway, used)
        return
    got = ipaddress.ip_address(str(allocate(gateway, used)))
    assert got == free[0]
    assert got in net
    assert got not in (net.network_address, net.broadcast_address)
    assert got not in taken


@given(
    st.integers(0, 2**128 - 1),
    st.integers(64, 126),
    st.data(),
)
def test_allocate_v6_avoids_gateway_network_and_used(
    base: int, prefixlen: int, data: st.DataObject
) -> None:
    net = ipaddress.IPv6Network((base >> (128 - prefixlen) << (128 - prefixlen), prefixlen))
    size = min(2 ** (128 - prefixlen), 64)
    gateway = net.network_address + data.draw(st.integers(1, size - 1), label="gateway")
    used = {
        str(net.network_address + o)
        for o in data.draw(st.sets(st.integers(0, size - 1)), label="used")
    }
    taken = {ipaddress.ip_address(u) for u in used} | {gateway}
    free = [net.network_address + o for o in range(1, size) if net.network_address + o not in taken]
    iface = Interface(IP(gateway.packed), prefixlen)
    if not free:
        with pytest.raises(InvalidValue, match=r"^no free address left in "):
            allocate(iface, used)
        return
    got = ipaddress.ip_address(str(allocate(iface, used)))
    assert got == free[0]
    assert got in net and got != net.network_address and got not in taken


def test_dual_stack_network_round_trip_and_refusals() -> None:
    net = make_network("ds", "np-ds", "10.5.0.0/16", subnet6="fd00:5::/64")
    assert str(net.gateway) == "10.5.0.1/16"
    assert net.gateway6 is not None and str(net.gateway6) == "fd00:5::1/64"
    assert net.subnet6 == "fd00:5::/64"
    assert [str(g) for g in net.gateways] == ["10.5.0.1/16", "fd00:5::1/64"]
    assert Network.from_record(net.to_record()) == net
    with pytest.raises(InvalidValue, match="one IPv4, then one IPv6"):
        make_network("ds", "np-ds", "fd00:5::/64", subnet6="fd00:6::/64")
    with pytest.raises(InvalidValue, match="no IPv6 subnet given"):
        make_network("ds", "np-ds", "10.5.0.0/16", gateway6="fd00:5::1")


# ------------------------------------------------------------------------- the NAT sources


@pytest.mark.parametrize(
    ("subnet", "gateway", "expected"),
    [
        ("10.89.0.0/16", None, ("10.89.255.254", "10.89.255.253")),
        # the gateway is skipped where it is one of the highest addresses
        ("10.89.0.0/16", "10.89.255.254", ("10.89.255.253", "10.89.255.252")),
        ("10.89.0.0/16", "10.89.255.253", ("10.89.255.254", "10.89.255.252")),
        ("192.168.7.0/28", None, ("192.168.7.14", "192.168.7.13")),  # the smallest given them
        ("192.168.7.0/29", None, ()),  # 6 host addresses: all for the gateway and guests
        ("10.0.0.0/30", None, ()),
        ("fd00:89::/64", None, ()),  # IPv6: nothing translated to loopback; masquerade
    ],
)
def test_nat_sources_are_the_highest_host_addresses_but_the_gateway(
    subnet: str, gateway: str | None, expected: tuple[str, ...]
) -> None:
    net = make_network("demo", "np-demo", subnet, gateway)
    assert tuple(str(ip) for ip in net.nat_sources) == expected
    assert tuple(str(ip) for ip in nat_sources_for(net.gateway)) == expected
    assert net.reserved == frozenset({net.gateway.ip, *net.nat_sources})
    if expected:
        assert (str(net.loopback_source), str(net.hairpin_source)) == expected
    else:
        assert net.loopback_source is None and net.hairpin_source is None


def test_a_record_made_before_nat_sources_has_none_and_is_the_same_definition() -> None:
    net = make_network("demo", "np-demo", "10.89.0.0/16")
    old = {k: v for k, v in net.to_record().items() if k != "nat_sources"}
    before = Network.from_record(old)
    assert before.nat_sources == ()
    assert before != net and before.same_definition(net)
    assert before.with_nat_sources() == net
    other = make_network("demo", "np-demo", "10.90.0.0/16")
    assert not before.same_definition(other)
