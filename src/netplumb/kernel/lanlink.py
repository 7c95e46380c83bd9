"""rtnetlink for ``lan bridge``: whole address and route dumps, and replaying them.

``Netlink.addresses``/``default_routes`` read only what attach needs; moving a host's layout
needs every attribute (flags, lifetimes, labels, metrics, preference), so that the request
that puts an address or route back is the one the kernel reported.
"""

from __future__ import annotations

import errno as _errno
import struct

from netplumb.errors import KernelError
from netplumb.kernel.netlink import Netlink
from netplumb.kernel.rtmsg import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELADDR,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWROUTE,
)
from netplumb.lan.layout import AF_INET, AF_INET6, Address, Route

LAN_MARK = "netplumb:lan:"  # + the host interface's name, on the bridge lan bridge creates


def addresses(nl: Netlink) -> list[Address]:
    out = []
    for family in (AF_INET, AF_INET6):
        body = struct.pack("=BBBBI", family, 0, 0, 0, 0)
        out += [Address.unpack(b) for b in nl.dump(RTM_GETADDR, body, "list addresses")]
    return out


def routes(nl: Netlink) -> list[Route]:
    """Every route of every table, both families (no table filter: a plain dump lists all)."""
    out = []
    for family in (AF_INET, AF_INET6):
        body = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
        out += [Route.unpack(b) for b in nl.dump(RTM_GETROUTE, body, "list routes")]
    return out


def add_address(
    nl: Netlink,
    addr: Address,
    index: int,
    ifname: str,
    label: str | None = None,
    extra_flags: int = 0,
    exist_ok: bool = False,
) -> None:
    what = f'cannot add address {addr} to "{ifname}"'
    try:
        nl.request(
            RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, addr.pack(index, label, extra_flags), what
        )
    except KernelError as exc:
        if not (exist_ok and exc.errno == _errno.EEXIST):
            raise


def delete_address(nl: Netlink, addr: Address, index: int, ifname: str) -> None:
    """Already gone is fine."""
    try:
        nl.request(
            RTM_DELADDR, 0, addr.pack(index), f'cannot remove address {addr} from "{ifname}"'
        )
    except KernelError as exc:
        if exc.errno not in (_errno.EADDRNOTAVAIL, _errno.ENODEV, _errno.ENOENT):
            raise


def add_route(nl: Netlink, route: Route, oif: int, ifname: str, exist_ok: bool = False) -> None:
    what = f'cannot add route {route} on "{ifname}"'
    try:
        nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route.pack(oif), what)
    except KernelError as exc:
        if not (exist_ok and exc.errno == _errno.EEXIST):
            raise


def delete_route(nl: Netlink, route: Route, oif: int, ifname: str) -> None:
    """Already gone is fine."""
    try:
        nl.request(RTM_DELROUTE, 0, route.pack(oif), f'cannot remove route {route} from "{ifname}"')
    except KernelError as exc:
        if exc.errno not in (_errno.ESRCH, _errno.ENODEV, _errno.ENOENT):
            raise


def ports_of(nl: Netlink, bridge_index: int) -> list[str]:
    return sorted(ln.name for ln in nl.links() if ln.master == bridge_index)


def write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise KernelError(f"cannot set {path.removeprefix('/proc/sys/')}", exc.errno or 1) from None
