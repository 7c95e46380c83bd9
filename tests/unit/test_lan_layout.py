"""What lan bridge moves: the plan from dumped addresses and routes, and its record."""

from __future__ import annotations

import struct

import pytest

from netplumb.errors import Conflict
from netplumb.lan import layout as L
from netplumb.model.ip import IP


def _addr(ip: str, plen: int, index: int, flags: int = 0) -> L.Address:
    raw = IP.parse(ip).packed
    fam = L.AF_INET if len(raw) == 4 else L.AF_INET6
    attrs = ((L.IFA_ADDRESS, raw), (L.IFA_LOCAL, raw), (L.IFA_LABEL, b"eth0\0"), (5, b"x"))
    return L.Address(fam, plen, flags, 0, index, attrs)


def _route(
    dst: str | None, oif: int, gw: str | None = None, proto: int = 4, table: int = 254
) -> L.Route:
    attrs: list[tuple[int, bytes]] = [(L.RTA_TABLE, struct.pack("=I", table))]
    if dst:
        attrs.append((L.RTA_DST, IP.parse(dst).packed))
    if gw:
        attrs.append((L.RTA_GATEWAY, IP.parse(gw).packed))
    attrs += [(L.RTA_OIF, struct.pack("=I", oif)), (12, b"cacheinfo")]
    return L.Route(L.AF_INET, 24 if dst else 0, 0, 0, table, proto, 0, 1, 0x10, tuple(attrs))


def test_the_plan_moves_addresses_and_routes_of_the_interface_only() -> None:
    addrs = [
        _addr("192.168.1.2", 24, 2),
        _addr("192.168.1.3", 24, 2, flags=L.IFA_F_SECONDARY),
        _addr("fd00::2", 64, 2),
        _addr("fe80::1", 64, 2),  # link-local stays
        _addr("10.0.0.1", 8, 3),  # another interface
    ]
    routes = [
        _route(None, 2, gw="192.168.1.1"),
        _route("192.168.1.0", 2, proto=L.RTPROT_KERNEL),  # made again by the address
        _route("192.168.1.2", 2, table=L.RT_TABLE_LOCAL),
        _route("10.9.0.0", 2),
        _route(None, 3, gw="10.0.0.254"),
    ]
    plan = L.plan_bridge("eth0", 2, addrs, routes)
    assert [str(a) for a in plan.addresses] == ["192.168.1.2/24", "192.168.1.3/24", "fd00::2/64"]
    assert [str(r) for r in plan.routes] == ["default via 192.168.1.1", "10.9.0.0/24"]
    assert [str(r) for r in plan.route_add_order()] == ["10.9.0.0/24", "default via 192.168.1.1"]
    # secondaries before their primary
    assert [str(a) for a in plan.delete_order()][:2] == ["fd00::2/64", "192.168.1.3/24"]
    assert L.from_record(L.to_record(plan)) == plan


def test_replayed_requests_patch_the_interface_and_drop_read_only_parts() -> None:
    route = _route(None, 2, gw="192.168.1.1")
    body = route.pack(7)
    again = L.Route.unpack(body)
    assert again.oif == 7 and again.gateway == IP.parse("192.168.1.1")
    assert again.flags == 0  # LINKDOWN is refused in a request
    assert 12 not in dict(again.attrs)  # RTA_CACHEINFO is read-only
    addr = _addr("192.168.1.2", 24, 2)
    back = L.Address.unpack(addr.pack(9, label="br0"))
    assert back.index == 9 and back.label == "br0" and 5 not in dict(back.attrs)
    assert L.moved_label("eth0:1", "eth0", "br-eth0") == "br-eth0:1"
    assert L.moved_label("other", "eth0", "br-eth0") is None


def test_a_multipath_route_through_the_interface_is_refused() -> None:
    nexthops = struct.pack("=HBBi", 8, 0, 0, 2) + struct.pack("=HBBi", 8, 0, 0, 3)
    mp = L.Route(L.AF_INET, 0, 0, 0, 254, 4, 0, 1, 0, ((L.RTA_MULTIPATH, nexthops),))
    with pytest.raises(
        Conflict, match="cannot bridge eth0: the multipath route default goes through it"
    ):
        L.plan_bridge("eth0", 2, [], [mp])
