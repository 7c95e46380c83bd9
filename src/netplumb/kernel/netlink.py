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
from netplumb.kernel.rtmsg import (
    AF_BRIDGE,
    HDR,
    IFA_ADDRESS,
    IFA_F_NODAD,
    IFA_FLAGS,
    IFA_LOCAL,
    IFADDR,
    IFF_UP,
    IFINFO,
    IFLA_ADDRESS,
    IFLA_BRPORT_MODE,
    IFLA_EXT_MASK,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINK,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_NET_NS_FD,
    IFLA_PROTINFO,
    NETLINK_EXT_ACK,
    NETLINK_ROUTE,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_TABLE,
    RTEXT_FILTER_SKIP_STATS,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTM_SETLINK,
    RTMSG,
    RTN_UNICAST,
    RTPROT_STATIC,
    SOL_NETLINK,
    VETH_INFO_PEER,
    align,
    attr,
    attr_str,
    attr_u32,
    cstr,
    new_link_attrs,
    parse_attrs,
    parse_link,
)

# Link and Addr, the values a dump returns, are named here too (callers have always found them);
# the constants and attribute helpers are rtmsg's.
from netplumb.kernel.rtmsg import Addr as Addr  # noqa: PLC0414
from netplumb.kernel.rtmsg import Link as Link  # noqa: PLC0414

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


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
        header = HDR.pack(HDR.size + len(body), msg_type, flags | NLM_F_REQUEST, self._seq, 0)
        self.sock.send(header + body)
        return self._seq

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        """Send a request and wait for its ack; a kernel error becomes a ``KernelError``."""
        seq = self._send(msg_type, flags | NLM_F_ACK, body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + HDR.size <= len(data):
                length, mtype, mflags, mseq, _pid = HDR.unpack_from(data, offset)
                if mseq == seq and mtype == NLMSG_ERROR:
                    self._check_error(data[offset : offset + length], mflags, what)
                    return
                offset += align(length)

    def dump(self, msg_type: int, body: bytes, what: str) -> Iterator[bytes]:
        """The bodies of a dump's replies."""
        seq = self._send(msg_type, NLM_F_DUMP, body)
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + HDR.size <= len(data):
                length, mtype, mflags, mseq, _pid = HDR.unpack_from(data, offset)
                if mseq == seq:
                    if mtype == NLMSG_DONE:
                        return
                    if mtype == NLMSG_ERROR:
                        self._check_error(data[offset : offset + length], mflags, what)
                        return
                    yield data[offset + HDR.size : offset + length]
                offset += align(length)

    @staticmethod
    def _check_error(msg: bytes, flags: int, what: str) -> None:
        (err,) = struct.unpack_from("=i", msg, HDR.size)
        if err == 0:
            return
        detail = ""
        if flags & NLM_F_ACK_TLVS:
            orig_len = HDR.unpack_from(msg, HDR.size + 4)[0]
            start = HDR.size + 4 + (HDR.size if flags & NLM_F_CAPPED else align(orig_len))
            tlvs = parse_attrs(msg, start)
            if NLMSGERR_ATTR_MSG in tlvs:
                detail = cstr(tlvs[NLMSGERR_ATTR_MSG])
        exc = KernelError(what, -err)
        if detail:
            exc.args = (f"{exc.args[0]} ({detail})",)
        raise exc

    # -- links --------------------------------------------------------------------------------

    def get_link(self, name: str) -> Link | None:
        """The link of that name, or None."""
        body = (
            IFINFO.pack(0, 0, 0, 0, 0)
            + attr_str(IFLA_IFNAME, name)
            + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        )
        seq = self._send(RTM_GETLINK, 0, body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + HDR.size <= len(data):
                length, mtype, mflags, mseq, _pid = HDR.unpack_from(data, offset)
                if mseq == seq:
                    if mtype == NLMSG_ERROR:
                        (err,) = struct.unpack_from("=i", data, offset + HDR.size)
                        if -err == _errno.ENODEV:
                            return None
                        self._check_error(data[offset : offset + length], mflags, f"get {name}")
                    elif mtype == RTM_NEWLINK:
                        return parse_link(data[offset + HDR.size : offset + length])
                offset += align(length)

    def links(self) -> list[Link]:
        body = IFINFO.pack(0, 0, 0, 0, 0) + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        return [parse_link(b) for b in self.dump(RTM_GETLINK, body, "list links")]

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
        attrs = new_link_attrs(name, mtu, mac, netns_fd)
        if master:
            attrs += attr_u32(IFLA_MASTER, master)
        if link:
            attrs += attr_u32(IFLA_LINK, link)
        info = attr_str(IFLA_INFO_KIND, kind)
        if info_data:
            info += attr(IFLA_INFO_DATA, info_data)
        attrs += attr(IFLA_LINKINFO, info)
        flags = IFF_UP if up else 0
        body = IFINFO.pack(0, 0, 0, flags, IFF_UP if up else 0) + attrs
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
        attrs = new_link_attrs(name, mtu, mac, netns_fd)
        flags = IFF_UP if up else 0
        return attr(VETH_INFO_PEER, IFINFO.pack(0, 0, 0, flags, flags) + attrs)

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
        body = IFINFO.pack(0, 0, index, flags, change) + attrs
        self.request(RTM_NEWLINK, 0, body, what)

    def set_hairpin(self, index: int, what: str) -> None:
        """Let the bridge send a frame back out of the port it came in by (the port's hairpin
        mode, as ``bridge link set dev X hairpin on``): a guest reaching its own published port
        through a machine address, when bridge-nf-call-iptables bridges the translated packet."""
        protinfo = attr(IFLA_BRPORT_MODE, b"\x01")
        body = IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + attr(IFLA_PROTINFO | NLA_F_NESTED, protinfo)
        self.request(RTM_SETLINK, 0, body, what)

    def delete_link(self, index: int, what: str, name: str | None = None) -> bool:
        """Delete by index (or by name when index is 0); False when it is already gone."""
        body = IFINFO.pack(0, 0, index, 0, 0) + (attr_str(IFLA_IFNAME, name) if name else b"")
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
        body = IFADDR.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index) + attrs
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, what)

    def delete_address(
        self, index: int, family: int, address: bytes, prefixlen: int, what: str
    ) -> None:
        attrs = attr(IFA_LOCAL, address) + attr(IFA_ADDRESS, address)
        body = IFADDR.pack(family, prefixlen, 0, 0, index) + attrs
        try:
            self.request(RTM_DELADDR, 0, body, what)
        except KernelError as exc:
            if exc.errno not in (_errno.EADDRNOTAVAIL, _errno.ENODEV):
                raise

    def addresses(self, family: int = AF_UNSPEC) -> list[Addr]:
        out = []
        for body in self.dump(RTM_GETADDR, IFADDR.pack(family, 0, 0, 0, 0), "list addresses"):
            fam, plen, _flags, _scope, index = IFADDR.unpack_from(body)
            attrs = parse_attrs(body, IFADDR.size)
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
        body = RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, protocol, scope, RTN_UNICAST, 0)
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
        body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        for msg in self.dump(RTM_GETROUTE, body, "list routes"):
            _fam, dst_len, _s, _t, table, proto, _sc, rtype, _f = RTMSG.unpack_from(msg)
            attrs = parse_attrs(msg, RTMSG.size)
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if dst_len == 0 and table == RT_TABLE_MAIN and rtype == RTN_UNICAST:
                oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
                out.append((attrs.get(RTA_GATEWAY), oif, proto))
        return out
