"""The layout of a host interface as data, and the plan of what moves to a bridge (pure).

Addresses and routes are kept as the kernel dumped them (the message header's fields and the
attributes, in order), so that putting them back replays the very same request: ``ip -j addr``
and ``ip -j route`` read the same before ``lan bridge`` and after ``lan unbridge``.
"""

from __future__ import annotations

import struct

from netplumb.errors import Conflict
from netplumb.model.ip import IP
from netplumb.model.value import Value

AF_INET, AF_INET6 = 2, 10

IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_CACHEINFO = 1, 2, 3, 4, 6
IFA_FLAGS, IFA_RT_PRIORITY, IFA_PROTO = 8, 9, 11
# What a new address may be given: the rest of a dump (IFA_MULTICAST, IFA_ANYCAST, the
# target netns id) describes, it does not configure.
ADDR_REPLAY = frozenset(
    (IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_CACHEINFO, IFA_FLAGS)
) | frozenset((IFA_RT_PRIORITY, IFA_PROTO))
IFA_F_SECONDARY, IFA_F_NODAD = 0x01, 0x02

RTA_DST, RTA_SRC, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC = 1, 2, 4, 5, 6, 7
RTA_METRICS, RTA_MULTIPATH, RTA_FLOW, RTA_TABLE, RTA_VIA, RTA_PREF = 8, 9, 11, 15, 18, 20
RTA_ENCAP_TYPE, RTA_ENCAP, RTA_NH_ID = 21, 22, 30
ROUTE_REPLAY = frozenset(
    (RTA_DST, RTA_SRC, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_METRICS)
) | frozenset((RTA_FLOW, RTA_TABLE, RTA_VIA, RTA_PREF, RTA_ENCAP_TYPE, RTA_ENCAP))
RT_TABLE_LOCAL = 255
RTPROT_KERNEL = 2
RTN_UNICAST = 1
RTNH_F_ONLINK = 0x4  # the only route flag a request may carry (DEAD/LINKDOWN are refused)

Attrs = tuple[tuple[int, bytes], ...]


def parse_attrs(data: bytes, offset: int) -> Attrs:
    """The attributes of a netlink message body from ``offset``, in order."""
    out = []
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out.append((kind & 0x3FFF, data[offset + 4 : offset + length]))
        offset += (length + 3) & ~3
    return tuple(out)


def pack_attrs(attrs: Attrs) -> bytes:
    out = b""
    for kind, payload in attrs:
        length = 4 + len(payload)
        out += struct.pack("=HH", length, kind) + payload + b"\0" * (((length + 3) & ~3) - length)
    return out


def _get(attrs: Attrs, kind: int) -> bytes | None:
    return next((v for k, v in attrs if k == kind), None)


def _u32(raw: bytes | None) -> int | None:
    return struct.unpack("=I", raw[:4])[0] if raw is not None and len(raw) >= 4 else None


class Address(Value):
    """One address as dumped (``ifaddrmsg`` header and attributes)."""

    __slots__ = ("attrs", "family", "flags", "index", "prefixlen", "scope")
    family: int
    prefixlen: int
    flags: int
    scope: int
    index: int
    attrs: Attrs

    def __init__(
        self, family: int, prefixlen: int, flags: int, scope: int, index: int, attrs: Attrs
    ) -> None:
        self.family = family
        self.prefixlen = prefixlen
        self.flags = flags
        self.scope = scope
        self.index = index
        self.attrs = attrs
        self._freeze()

    @classmethod
    def unpack(cls, body: bytes) -> Address:
        family, plen, flags, scope, index = struct.unpack_from("=BBBBI", body)
        return cls(family, plen, flags, scope, index, parse_attrs(body, 8))

    def pack(self, index: int, label: str | None = None, extra_flags: int = 0) -> bytes:
        """The body of a request for this address on interface ``index``.

        ``label``: the IPv4 label to give (a label names its interface, ``eth0:1``).
        """
        attrs = []
        flags32 = _u32(_get(self.attrs, IFA_FLAGS))
        for kind, value in self.attrs:
            if kind not in ADDR_REPLAY:
                continue
            if kind == IFA_LABEL and label is not None:
                attrs.append((kind, label.encode() + b"\0"))
            elif kind == IFA_FLAGS:
                attrs.append((kind, struct.pack("=I", (flags32 or 0) | extra_flags)))
            else:
                attrs.append((kind, value))
        if extra_flags and flags32 is None:
            attrs.append((IFA_FLAGS, struct.pack("=I", self.flags | extra_flags)))
        head = struct.pack(
            "=BBBBI",
            self.family,
            self.prefixlen,
            (self.flags | extra_flags) & 0xFF,
            self.scope,
            index,
        )
        return head + pack_attrs(tuple(attrs))

    @property
    def ip(self) -> IP:
        raw = _get(self.attrs, IFA_LOCAL) or _get(self.attrs, IFA_ADDRESS) or b""
        return IP(raw)

    @property
    def label(self) -> str | None:
        raw = _get(self.attrs, IFA_LABEL)
        return raw.split(b"\0", 1)[0].decode() if raw is not None else None

    @property
    def link_local(self) -> bool:
        """IPv6 link-local: each interface has its own, made by the kernel; it stays."""
        return self.family == AF_INET6 and self.ip.packed[:2] == b"\xfe\x80"

    @property
    def secondary(self) -> bool:
        return bool(self.flags & IFA_F_SECONDARY)

    def __str__(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


class Route(Value):
    """One route as dumped (``rtmsg`` header and attributes)."""

    __slots__ = (
        "attrs",
        "dst_len",
        "family",
        "flags",
        "protocol",
        "rtype",
        "scope",
        "src_len",
        "table",
        "tos",
    )
    family: int
    dst_len: int
    src_len: int
    tos: int
    table: int
    protocol: int
    scope: int
    rtype: int
    flags: int
    attrs: Attrs

    def __init__(
        self,
        family: int,
        dst_len: int,
        src_len: int,
        tos: int,
        table: int,
        protocol: int,
        scope: int,
        rtype: int,
        flags: int,
        attrs: Attrs,
    ) -> None:
        self.family = family
        self.dst_len = dst_len
        self.src_len = src_len
        self.tos = tos
        self.table = table
        self.protocol = protocol
        self.scope = scope
        self.rtype = rtype
        self.flags = flags
        self.attrs = attrs
        self._freeze()

    @classmethod
    def unpack(cls, body: bytes) -> Route:
        fam, dst_len, src_len, tos, table, proto, scope, rtype, flags = struct.unpack_from(
            "=BBBBBBBBI", body
        )
        attrs = parse_attrs(body, 12)
        return cls(fam, dst_len, src_len, tos, table, proto, scope, rtype, flags, attrs)

    def pack(self, oif: int) -> bytes:
        """The body of a request for this route through interface ``oif``."""
        attrs = tuple(
            (k, struct.pack("=I", oif) if k == RTA_OIF else v)
            for k, v in self.attrs
            if k in ROUTE_REPLAY
        )
        head = struct.pack(
            "=BBBBBBBBI",
            self.family,
            self.dst_len,
            self.src_len,
            self.tos,
            self.table,
            self.protocol,
            self.scope,
            self.rtype,
            self.flags & RTNH_F_ONLINK,
        )
        return head + pack_attrs(attrs)

    @property
    def oif(self) -> int | None:
        return _u32(_get(self.attrs, RTA_OIF))

    @property
    def table_id(self) -> int:
        return _u32(_get(self.attrs, RTA_TABLE)) or self.table

    @property
    def gateway(self) -> IP | None:
        raw = _get(self.attrs, RTA_GATEWAY)
        return IP(raw) if raw is not None else None

    @property
    def multipath(self) -> bytes | None:
        return _get(self.attrs, RTA_MULTIPATH)

    def __str__(self) -> str:
        raw = _get(self.attrs, RTA_DST)
        dst = f"{IP(raw)}/{self.dst_len}" if raw is not None else "default"
        via = f" via {self.gateway}" if self.gateway is not None else ""
        return f"{dst}{via}"


def _multipath_oifs(raw: bytes) -> list[int]:
    """The interface index of each nexthop of an RTA_MULTIPATH (struct rtnexthop list)."""
    out, offset = [], 0
    while offset + 8 <= len(raw):
        length, _flags, _hops, ifindex = struct.unpack_from("=HBBi", raw, offset)
        if length < 8:
            break
        out.append(ifindex)
        offset += (length + 3) & ~3
    return out


class BridgePlan(Value):
    """What ``lan bridge`` moves: addresses in the order to add them, routes likewise."""

    __slots__ = ("addresses", "routes")
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]

    def __init__(self, addresses: tuple[Address, ...], routes: tuple[Route, ...]) -> None:
        self.addresses = addresses
        self.routes = routes
        self._freeze()

    def add_order(self) -> tuple[Address, ...]:
        """IPv4 in dump order (primaries before their secondaries); IPv6 reversed, because the
        kernel puts a new address ahead of those of the same scope: the list reads as before."""
        v4 = [a for a in self.addresses if a.family == AF_INET]
        v6 = [a for a in self.addresses if a.family != AF_INET]
        return (*v4, *reversed(v6))

    def delete_order(self) -> tuple[Address, ...]:
        """Secondaries first: deleting a primary IPv4 address deletes its secondaries too."""
        return tuple(reversed(self.addresses))

    def route_add_order(self) -> tuple[Route, ...]:
        """Routes on the link first, then those through a gateway (which needs one)."""
        return tuple(
            sorted(self.routes, key=lambda r: r.gateway is not None)  # stable: dump order kept
        )


def movable_route(route: Route, index: int) -> bool:
    """Whether ``route`` is one the host made through interface ``index`` and must follow it.

    The kernel's own routes (the prefix and local routes of each address, IPv6 multicast and
    link-local) are left out: adding the addresses makes them again wherever they go.
    """
    return (
        route.oif == index
        and route.table_id != RT_TABLE_LOCAL
        and route.protocol != RTPROT_KERNEL
        and route.rtype == RTN_UNICAST
    )


def plan_bridge(
    ifname: str, index: int, addresses: list[Address], routes: list[Route]
) -> BridgePlan:
    """The addresses (IPv4 and IPv6, link-local left) and routes (the default included) that
    leave ``ifname`` for the bridge. A multipath route through it is refused: moving one of its
    nexthops is not something to do behind the user's back."""
    for route in routes:
        mp = route.multipath
        if mp is not None and index in _multipath_oifs(mp):
            raise Conflict(
                f"cannot bridge {ifname}: the multipath route {route} goes through it "
                "(move that route yourself first)"
            )
    addrs = tuple(a for a in addresses if a.index == index and not a.link_local)
    moved = tuple(r for r in routes if movable_route(r, index))
    return BridgePlan(addrs, moved)


def moved_label(label: str | None, ifname: str, bridge: str) -> str | None:
    """The label an IPv4 address carries on the bridge: ``eth0:1`` becomes ``br0:1``."""
    if label is None or not label.startswith(ifname):
        return None
    new = bridge + label[len(ifname) :]
    return new if len(new) <= 15 else bridge


def to_record(plan: BridgePlan) -> dict[str, object]:
    return {
        "addresses": [
            [a.family, a.prefixlen, a.flags, a.scope, a.index, list(a.attrs)]
            for a in plan.addresses
        ],
        "routes": [
            [
                r.family,
                r.dst_len,
                r.src_len,
                r.tos,
                r.table,
                r.protocol,
                r.scope,
                r.rtype,
                r.flags,
                list(r.attrs),
            ]
            for r in plan.routes
        ],
    }


def from_record(rec: dict[str, object]) -> BridgePlan:
    addrs_raw = rec.get("addresses")
    routes_raw = rec.get("routes")
    assert isinstance(addrs_raw, list) and isinstance(routes_raw, list)
    addrs = tuple(
        Address(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), _attrs(a[5]))
        for a in addrs_raw
    )
    routes = tuple(_route(r) for r in routes_raw)
    return BridgePlan(addrs, routes)


def _attrs(raw: list[tuple[int, bytes]]) -> Attrs:
    return tuple((int(k), bytes(v)) for k, v in raw)


def _route(r: list[object]) -> Route:
    f = [int(str(x)) for x in r[:9]]
    raw = r[9]
    assert isinstance(raw, list)
    return Route(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], _attrs(raw))
