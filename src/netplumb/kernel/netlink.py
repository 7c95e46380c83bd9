"""A small rtnetlink client on the standard library alone.

Why not pyroute2: importing it costs ~300 ms here, which alone is five times pipework's whole
run; this module imports in well under a millisecond and an attach costs a handful of
request/ack round trips. Only the messages netplumb needs are spoken: links (veth, bridge,
macvlan), addresses, routes.

A socket belongs to the network namespace it was created in, for its whole life: to talk to a
guest, open a socket while switched into the guest's namespace (see ``netns.socket_in``).
"""

from __future__ import annotations

import errno as _errno
import struct
from _socket import AF_INET6, AF_NETLINK, AF_UNSPEC, SOCK_CLOEXEC, SOCK_RAW
from _socket import socket as _rawsocket

from netplumb.errors import KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

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

_HDR = struct.Struct("=LHHLL")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * (_align(length) - length)


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
    unpack = _RTA.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= 0x3FFF
        if wanted is None or kind in wanted:
            out[kind] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return out


def _cstr(raw: bytes) -> str:
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


_LINK_ATTRS = frozenset(
    (IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS)
)
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3


def _parse_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
    attrs = parse_attrs(body, _IFINFO.size, _LINK_ATTRS)
    kind = None
    if IFLA_LINKINFO in attrs:
        info = parse_attrs(attrs[IFLA_LINKINFO])
        if IFLA_INFO_KIND in info:
            kind = _cstr(info[IFLA_INFO_KIND])
    alias = _cstr(attrs[IFLA_IFALIAS]) if IFLA_IFALIAS in attrs else None
    return Link(
        index=index,
        name=_cstr(attrs.get(IFLA_IFNAME, b"")),
        flags=flags,
        kind=kind,
        master=struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else None,
        mtu=struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
        mac=attrs.get(IFLA_ADDRESS, b""),
        alias=alias or None,
        link=struct.unpack("=i", attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else None,
    )


def _new_link_attrs(name: str, mtu: int | None, mac: bytes | None, netns_fd: int | None) -> bytes:
    """The attributes a new link (or a veth's peer) is created with."""
    attrs = attr_str(IFLA_IFNAME, name)
    if mtu:
        attrs += attr_u32(IFLA_MTU, mtu)
    if mac:
        attrs += attr(IFLA_ADDRESS, mac)
    if netns_fd is not None:
        attrs += attr_u32(IFLA_NET_NS_FD, netns_fd)
    return attrs


class Netlink:
    """One NETLINK_ROUTE socket with synchronous request/ack."""

    def __init__(self) -> None:
        self.sock = _rawsocket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:  # kernels before 4.12: plain errno only
            pass
        self.sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------

    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        self._seq += 1
        header = _HDR.pack(_HDR.size + len(body), msg_type, flags | NLM_F_REQUEST, self._seq, 0)
        self.sock.send(header + body)
        return self._seq

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        """Send a request and wait for its ack; a kernel error becomes a ``KernelError``."""
        seq = self._send(msg_type, flags | NLM_F_ACK, body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, mflags, mseq, _pid = _HDR.unpack_from(data, offset)
                if mseq == seq and mtype == NLMSG_ERROR:
                    self._check_error(data[offset : offset + length], mflags, what)
                    return
                offset += _align(length)

    def dump(self, msg_type: int, body: bytes, what: str) -> Iterator[bytes]:
        """The bodies of a dump's replies."""
        seq = self._send(msg_type, NLM_F_DUMP, body)
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, mflags, mseq, _pid = _HDR.unpack_from(data, offset)
                if mseq == seq:
                    if mtype == NLMSG_DONE:
                        return
                    if mtype == NLMSG_ERROR:
                        self._check_error(data[offset : offset + length], mflags, what)
                        return
                    yield data[offset + _HDR.size : offset + length]
                offset += _align(length)

    @staticmethod
    def _check_error(msg: bytes, flags: int, what: str) -> None:
        (err,) = struct.unpack_from("=i", msg, _HDR.size)
        if err == 0:
            return
        detail = ""
        if flags & NLM_F_ACK_TLVS:
            orig_len = _HDR.unpack_from(msg, _HDR.size + 4)[0]
            start = _HDR.size + 4 + (_HDR.size if flags & NLM_F_CAPPED else _align(orig_len))
            tlvs = parse_attrs(msg, start)
            if NLMSGERR_ATTR_MSG in tlvs:
                detail = _cstr(tlvs[NLMSGERR_ATTR_MSG])
        exc = KernelError(what, -err)
        if detail:
            exc.args = (f"{exc.args[0]} ({detail})",)
        raise exc

    # -- links --------------------------------------------------------------------------------

    def get_link(self, name: str) -> Link | None:
        """The link of that name, or None."""
        body = (
            _IFINFO.pack(0, 0, 0, 0, 0)
            + attr_str(IFLA_IFNAME, name)
            + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        )
        seq = self._send(RTM_GETLINK, 0, body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, mflags, mseq, _pid = _HDR.unpack_from(data, offset)
                if mseq == seq:
                    if mtype == NLMSG_ERROR:
                        (err,) = struct.unpack_from("=i", data, offset + _HDR.size)
                        if -err == _errno.ENODEV:
                            return None
                        self._check_error(data[offset : offset + length], mflags, f"get {name}")
                    elif mtype == RTM_NEWLINK:
                        return _parse_link(data[offset + _HDR.size : offset + length])
                offset += _align(length)

    def links(self) -> list[Link]:
        body = _IFINFO.pack(0, 0, 0, 0, 0) + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        return [_parse_link(b) for b in self.dump(RTM_GETLINK, body, "list links")]

    def create_link(
        self,
        name: str,
        kind: str,
        *,
        up: bool = False,
        mtu: int | None = None,
        mac: bytes | None = None,
        master: int | None = None,
        link: int | None = None,
        netns_fd: int | None = None,
        info_data: bytes = b"",
        what: str,
    ) -> None:
        """RTM_NEWLINK with NLM_F_EXCL: creating what exists is an EEXIST error."""
        attrs = _new_link_attrs(name, mtu, mac, netns_fd)
        if master:
            attrs += attr_u32(IFLA_MASTER, master)
        if link:
            attrs += attr_u32(IFLA_LINK, link)
        info = attr_str(IFLA_INFO_KIND, kind)
        if info_data:
            info += attr(IFLA_INFO_DATA, info_data)
        attrs += attr(IFLA_LINKINFO, info)
        flags = IFF_UP if up else 0
        body = _IFINFO.pack(0, 0, 0, flags, IFF_UP if up else 0) + attrs
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, what)

    @staticmethod
    def veth_peer(
        name: str,
        *,
        netns_fd: int | None,
        mtu: int | None = None,
        mac: bytes | None = None,
        up: bool = False,
    ) -> bytes:
        """IFLA_INFO_DATA of a veth: the peer, created directly in ``netns_fd`` when given.

        Creating the peer inside the guest's namespace in the same request avoids moving a
        device between namespaces afterwards, which costs ~21 ms on its own here.
        """
        attrs = _new_link_attrs(name, mtu, mac, netns_fd)
        flags = IFF_UP if up else 0
        return attr(VETH_INFO_PEER, _IFINFO.pack(0, 0, 0, flags, flags) + attrs)

    def set_link(
        self,
        index: int,
        *,
        by_name: str | None = None,
        up: bool | None = None,
        alias: str | None = None,
        name: str | None = None,
        master: int | None = None,
        mac: bytes | None = None,
        netns_fd: int | None = None,
        what: str,
    ) -> None:
        attrs = attr_str(IFLA_IFNAME, by_name) if by_name is not None else b""
        if alias is not None:
            attrs += attr(IFLA_IFALIAS, alias.encode())
        if name is not None:
            attrs += attr_str(IFLA_IFNAME, name)
        if master is not None:
            attrs += attr_u32(IFLA_MASTER, master)
        if mac is not None:
            attrs += attr(IFLA_ADDRESS, mac)
        if netns_fd is not None:
            attrs += attr_u32(IFLA_NET_NS_FD, netns_fd)
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        body = _IFINFO.pack(0, 0, index, flags, change) + attrs
        self.request(RTM_NEWLINK, 0, body, what)

    def delete_link(self, index: int, what: str, name: str | None = None) -> bool:
        """Delete by index (or by name when index is 0); False when it is already gone."""
        body = _IFINFO.pack(0, 0, index, 0, 0) + (attr_str(IFLA_IFNAME, name) if name else b"")
        try:
            self.request(RTM_DELLINK, 0, body, what)
        except KernelError as exc:
            if exc.errno in (_errno.ENODEV, _errno.ENOENT):
                return False
            raise
        return True

    # -- addresses ----------------------------------------------------------------------------

    def add_address(
        self, index: int, family: int, address: bytes, prefixlen: int, what: str
    ) -> None:
        """Add an address; IPv6 ones skip duplicate address detection.

        netplumb chooses or is told each address and probes the LAN itself where that matters;
        waiting ~1 s for the kernel's DAD would leave a fresh interface unusable meanwhile.
        """
        attrs = attr(IFA_LOCAL, address) + attr(IFA_ADDRESS, address)
        flags = 0
        if family == AF_INET6:
            flags = IFA_F_NODAD
            attrs += attr_u32(IFA_FLAGS, IFA_F_NODAD)
        body = _IFADDR.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index) + attrs
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, what)

    def delete_address(
        self, index: int, family: int, address: bytes, prefixlen: int, what: str
    ) -> None:
        attrs = attr(IFA_LOCAL, address) + attr(IFA_ADDRESS, address)
        body = _IFADDR.pack(family, prefixlen, 0, 0, index) + attrs
        try:
            self.request(RTM_DELADDR, 0, body, what)
        except KernelError as exc:
            if exc.errno not in (_errno.EADDRNOTAVAIL, _errno.ENODEV):
                raise

    def addresses(self, family: int = AF_UNSPEC) -> list[Addr]:
        out = []
        for body in self.dump(RTM_GETADDR, _IFADDR.pack(family, 0, 0, 0, 0), "list addresses"):
            fam, plen, _flags, _scope, index = _IFADDR.unpack_from(body)
            attrs = parse_attrs(body, _IFADDR.size)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS) or b""
            out.append(Addr(fam, plen, index, raw))
        return out

    # -- routes -------------------------------------------------------------------------------

    def route(
        self,
        op: str,
        family: int,
        dst: bytes | None,
        dst_len: int,
        *,
        gateway: bytes | None = None,
        oif: int | None = None,
        what: str,
        protocol: int = RTPROT_STATIC,
    ) -> None:
        """``op`` is "add" (exclusive), "replace" or "delete"; scope follows from the gateway."""
        scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        body = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, protocol, scope, RTN_UNICAST, 0)
        if dst is not None:
            body += attr(RTA_DST, dst)
        if gateway is not None:
            body += attr(RTA_GATEWAY, gateway)
        if oif is not None:
            body += attr_u32(RTA_OIF, oif)
        if op == "delete":
            body = body[:5] + bytes([0, 0]) + body[7:]  # any protocol and scope match
            self.request(RTM_DELROUTE, 0, body, what)
            return
        flags = NLM_F_CREATE | (NLM_F_REPLACE if op == "replace" else NLM_F_EXCL)
        self.request(RTM_NEWROUTE, flags, body, what)

    def default_routes(self, family: int) -> list[tuple[bytes | None, int | None, int]]:
        """(gateway, oif, protocol) of each default route in the main table."""
        out = []
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        for msg in self.dump(RTM_GETROUTE, body, "list routes"):
            _fam, dst_len, _s, _t, table, proto, _sc, rtype, _f = _RTMSG.unpack_from(msg)
            attrs = parse_attrs(msg, _RTMSG.size)
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if dst_len == 0 and table == RT_TABLE_MAIN and rtype == RTN_UNICAST:
                oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
                out.append((attrs.get(RTA_GATEWAY), oif, proto))
        return out
