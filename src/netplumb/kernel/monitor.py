"""Kernel events for ``netplumb watch``: an rtnetlink socket subscribed to link and address
changes (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR) in one network namespace.

Only removals matter to watch (what netplumb makes, someone took away); a socket is bound to
the namespace it was created in for its whole life, and holds that namespace alive: close it
when its guest dies.
"""

from __future__ import annotations

import errno
import struct
from _socket import AF_NETLINK, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, SOL_SOCKET
from _socket import socket as _rawsocket

from netplumb.kernel import netns
from netplumb.kernel.rtmsg import (
    IFLA_IFALIAS,
    IFLA_IFNAME,
    NETLINK_ROUTE,
    RTM_DELADDR,
    RTM_DELLINK,
    parse_attrs,
)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
SO_RCVBUF = 8
_HDR = struct.Struct("=LHHLL")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_WANTED = frozenset((IFLA_IFNAME, IFLA_IFALIAS))


class Removal:
    """A link (``kind`` "link", with its name and alias) or an address (``kind`` "address",
    with the index of its interface) that went; ``kind`` "overflow" when events were lost."""

    __slots__ = ("alias", "index", "kind", "name")

    def __init__(self, kind: str, index: int = 0, name: str = "", alias: str | None = None) -> None:
        self.kind = kind
        self.index = index
        self.name = name
        self.alias = alias


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


class Monitor:
    """Link and address events of one namespace (this process's own with ``netns_fd`` None)."""

    def __init__(self, netns_fd: int | None = None) -> None:
        if netns_fd is None:
            self.sock = self._open()
        else:
            with netns.entered(netns_fd):
                self.sock = self._open()

    @staticmethod
    def _open() -> _rawsocket:
        sock = _rawsocket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE)
        try:
            sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 1 << 20)
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        except BaseException:
            sock.close()
            raise
        return sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def removals(self) -> list[Removal]:
        """The removals among the events waiting (never blocks)."""
        out: list[Removal] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped events: assume the worst
                    out.append(Removal("overflow"))
                    continue
                raise
            if not data:
                return out
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, _flags, _seq, _pid = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                body = data[offset + _HDR.size : offset + length]
                if mtype == RTM_DELLINK and len(body) >= _IFINFO.size:
                    index = _IFINFO.unpack_from(body)[2]
                    attrs = parse_attrs(body, _IFINFO.size, _WANTED)
                    alias = _cstr(attrs[IFLA_IFALIAS]) if IFLA_IFALIAS in attrs else None
                    name = _cstr(attrs.get(IFLA_IFNAME, b""))
                    out.append(Removal("link", index, name, alias or None))
                elif mtype == RTM_DELADDR and len(body) >= _IFADDR.size:
                    out.append(Removal("address", _IFADDR.unpack_from(body)[4]))
                offset += (length + 3) & ~3
