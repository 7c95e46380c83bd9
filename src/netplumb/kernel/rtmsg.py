"""rtnetlink's wire format: message and attribute layouts, the constants netplumb speaks, and
what a dump says about links and addresses, as values. No socket here (``netlink.Netlink`` is
the client): decoding and encoding are plain functions of bytes.
"""

from __future__ import annotations

import struct

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG = 1

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 16, 18, 20, 28
IFLA_CARRIER = 33
IFLA_PROTINFO, IFLA_BRPORT_MODE, NLA_F_NESTED, AF_BRIDGE = 12, 4, 0x8000, 7
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_MACVLAN_MODE = 1
MACVLAN_MODE_BRIDGE = 4

IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD = 0x02

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1

IFF_UP = 0x1

HDR = struct.Struct("=LHHLL")
IFINFO = struct.Struct("=BxHiII")
IFADDR = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
RTA = struct.Struct("=HH")


def align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(payload)
    return RTA.pack(length, kind) + payload + b"\0" * (align(length) - length)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def parse_attrs(
    data: bytes, offset: int = 0, wanted: frozenset[int] | None = None
) -> dict[int, bytes]:
    """The attributes of a message body from ``offset``; the last one of each type wins.

    With ``wanted``, only those types are copied out: a link carries some fifty attributes and
    netplumb reads seven.
    """
    out: dict[int, bytes] = {}
    end = len(data)
    unpack = RTA.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= 0x3FFF
        if wanted is None or kind in wanted:
            out[kind] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return out


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


class Link:
    """What netplumb reads of an interface."""

    __slots__ = ("alias", "flags", "index", "kind", "link", "mac", "master", "mtu", "name")

    def __init__(
        self,
        index: int,
        name: str,
        flags: int,
        kind: str | None,
        master: int | None,
        mtu: int,
        mac: bytes,
        alias: str | None,
        link: int | None,  # the parent (macvlan) or peer index (veth), in its own namespace
    ) -> None:
        self.index = index
        self.name = name
        self.flags = flags
        self.kind = kind
        self.master = master
        self.mtu = mtu
        self.mac = mac
        self.alias = alias
        self.link = link

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


class Addr:
    __slots__ = ("address", "family", "index", "prefixlen")

    def __init__(self, family: int, prefixlen: int, index: int, address: bytes) -> None:
        self.family = family
        self.prefixlen = prefixlen
        self.index = index
        self.address = address


LINK_ATTRS = frozenset(
    (IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS)
)
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3


def parse_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = IFINFO.unpack_from(body)
    attrs = parse_attrs(body, IFINFO.size, LINK_ATTRS)
    kind = None
    if IFLA_LINKINFO in attrs:
        info = parse_attrs(attrs[IFLA_LINKINFO])
        if IFLA_INFO_KIND in info:
            kind = cstr(info[IFLA_INFO_KIND])
    alias = cstr(attrs[IFLA_IFALIAS]) if IFLA_IFALIAS in attrs else None
    return Link(
        index=index,
        name=cstr(attrs.get(IFLA_IFNAME, b"")),
        flags=flags,
        kind=kind,
        master=struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else None,
        mtu=struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
        mac=attrs.get(IFLA_ADDRESS, b""),
        alias=alias or None,
        link=struct.unpack("=i", attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else None,
    )


def new_link_attrs(name: str, mtu: int | None, mac: bytes | None, netns_fd: int | None) -> bytes:
    """The attributes a new link (or a veth's peer) is created with."""
    attrs = attr_str(IFLA_IFNAME, name)
    if mtu:
        attrs += attr_u32(IFLA_MTU, mtu)
    if mac:
        attrs += attr(IFLA_ADDRESS, mac)
    if netns_fd is not None:
        attrs += attr_u32(IFLA_NET_NS_FD, netns_fd)
    return attrs
