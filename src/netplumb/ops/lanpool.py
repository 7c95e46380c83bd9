"""Containers on the LAN: the address pool with locked, persistent leases, ARP probing before an
address is used and announcing after, and macvlan mode with its host-side shim.

Why not a netplumb network record for the LAN: ``networks`` owns its bridge's gateway address,
refuses a subnet that overlaps one of the host's (the LAN's, by definition), and its records
drive the nftables rules (masquerading, isolation). The LAN is none of netplumb's: its
gateway is the LAN's router. So the LAN has its own small lease table, under the same
``flock`` discipline as ``networks.lease`` (``state.lock.Lock``) and in the same state directory.
"""

from __future__ import annotations

import struct
import time

from netplumb import state
from netplumb.errors import Conflict, InvalidValue, KernelError, NetplumbError
from netplumb.lan import layout
from netplumb.lan.arp import Timing
from netplumb.lan.pool import LanPool
from netplumb.model.ip import IP, Interface
from netplumb.model.mac import Mac
from netplumb.state.lock import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

ARP_HOLD = 600.0  # an address someone answered for is skipped for this long
STALE = 120.0  # a lease whose attach record never appeared (the command died) after this long
SHIM_MARK = "netplumb:lan-shim:"
SHIM_HOLDER = "lan-shim"


def lock() -> Lock:
    return Lock("lan", "leases.lock")


# -- the pool ---------------------------------------------------------------------------------


def get_pool() -> LanPool | None:
    rec = state.read("lan", "pool")
    return LanPool.from_record(rec) if rec else None


def set_pool(pool: LanPool) -> None:
    with lock():
        held = [ip for ip, h in _leases().items() if not h[0].startswith("arp:")]
        outside = [ip for ip in held if not pool.subnet.contains(IP.parse(ip))]
        if outside:
            raise Conflict(f"addresses {', '.join(outside)} are leased outside {pool.subnet}")
        state.write(pool.to_record(), "lan", "pool")


def remove_pool() -> None:
    with lock():
        held = sorted({h[0] for h in _leases().values() if not h[0].startswith("arp:")})
        if held:
            raise Conflict(f"the LAN pool has leases: {', '.join(held)}")
        state.remove("lan", "pool")
        state.remove("lan", "leases")


def _leases() -> dict[str, list[str]]:
    rec = state.read("lan", "leases") or {}
    return {str(k): [str(v[0]), str(v[1])] for k, v in rec.items()}


def leases() -> dict[str, str]:
    return {ip: h[0] for ip, h in sorted(_leases().items(), key=lambda kv: IP.parse(kv[0]).as_int)}


def _prune(table: dict[str, list[str]], now: float) -> None:
    for ip, (holder, since) in list(table.items()):
        age = now - float(since)
        if holder.startswith("arp:"):
            if age > ARP_HOLD:
                del table[ip]
        elif "@" in holder and age > STALE and state.read("attach", holder) is None:
            del table[ip]  # its command died between lease and attach, or it was removed


def lease(pool: LanPool, holder: str, wanted: IP | None, skip: set[str]) -> IP:
    """Lease ``wanted`` (checked against the pool) or the lowest free address of the range."""
    if wanted is not None:
        pool.check_wanted(wanted)
    with lock():
        now = time.time()
        table = _leases()
        _prune(table, now)
        if wanted is not None:
            held = table.get(str(wanted))
            # an address someone answered for is asked again: the probe decides
            if held is not None and held[0] != holder and not held[0].startswith("arp:"):
                who = held[0]
                raise Conflict(f"address {wanted} is already leased on the LAN (by {who})")
            ip = wanted
        else:
            found = next(pool.candidates(set(table) | skip), None)
            if found is None:
                raise Conflict(f"no free address left in the LAN pool {pool.first}-{pool.last}")
            ip = found
        table[str(ip)] = [holder, str(now)]
        state.write(dict(table), "lan", "leases")
    return ip


def release(ip: IP | str, holder: str, arp_holder: Mac | None = None) -> None:
    """Release ``ip`` if ``holder`` has it; with ``arp_holder``, remember who answered for it."""
    with lock():
        table = _leases()
        if table.get(str(ip), [""])[0] == holder:
            del table[str(ip)]
            if arp_holder is not None:
                table[str(ip)] = [f"arp:{arp_holder}", str(time.time())]
            state.write(dict(table), "lan", "leases")


def release_holder(holder: str) -> None:
    with lock():
        table = _leases()
        kept = {ip: h for ip, h in table.items() if h[0] != holder}
        if kept != table:
            state.write(dict(kept), "lan", "leases")


# -- where the LAN is -------------------------------------------------------------------------


def lan_target() -> tuple[str, str]:
    """(interface containers attach to, interface to probe on): the bridge in bridge mode, the
    host interface (parent of the macvlans) in macvlan mode."""
    rec = state.read("lan", "bridge")
    if rec is not None:
        return str(rec["bridge"]), str(rec["bridge"])
    rec = state.read("lan", "macvlan")
    if rec is not None:
        return str(rec["hostif"]), str(rec["hostif"])
    raise NetplumbError(
        "no LAN is set up: netplumb lan bridge HOSTIF, or netplumb lan macvlan HOSTIF, first"
    )


def probe_free(dev: str, ip: IP, timing: Timing) -> Mac | None:
    """Who holds ``ip``: this host itself counts (it never answers its own probe)."""
    from netplumb.kernel import arp

    if ip.packed in arp.local_addresses():
        from netplumb.kernel.session import host_socket

        link = host_socket().get_link(dev)
        return (
            Mac(link.mac) if link is not None and len(link.mac) == 6 else Mac(b"\x02" + b"\0" * 5)
        )
    return arp.probe(dev, ip, timing)


def claim(pool: LanPool, holder: str, wanted: IP | None, dev: str, timing: Timing) -> IP:
    """Lease an address and prove it free with ARP: a wanted address that answers is refused
    (naming the MAC that holds it); an automatic one is skipped for the next."""
    skip: set[str] = set()
    for _ in range(16):
        ip = lease(pool, holder, wanted, skip)
        try:
            holder_mac = probe_free(dev, ip, timing)
        except BaseException:
            release(ip, holder)
            raise
        if holder_mac is None:
            return ip
        release(ip, holder, arp_holder=holder_mac)
        if wanted is not None:
            raise Conflict(
                f"address {ip} is in use on the LAN: {holder_mac} answered an ARP probe for it "
                "(nothing was changed)"
            )
        skip.add(str(ip))
    raise Conflict(f"no free address found in the LAN pool {pool}: 16 candidates were in use")


# -- macvlan mode -----------------------------------------------------------------------------


def macvlan(hostif: str, shim: str | None, shim_ip: IP | None, timing: Timing | None) -> Record:
    """Macvlan mode on ``hostif`` (left untouched); with ``shim``, a macvlan of the host's own
    with an address from the pool and routes to the pool's range, so host and containers talk
    (a host cannot reach its macvlan children through the parent)."""
    from netplumb.kernel import arp
    from netplumb.kernel.netlink import Netlink
    from netplumb.model.names import check_ifname
    from netplumb.ops import lanbridge

    hostif = check_ifname(hostif, "host interface")
    timing = timing or arp.timing_from_env()
    with lanbridge.lock():
        if state.read("lan", "bridge") is not None:
            raise Conflict("the LAN is in bridge mode: netplumb lan unbridge first")
        old = state.read("lan", "macvlan")
        if old is not None:
            raise Conflict(f"the LAN is in macvlan mode on {old['hostif']} already")
        with Netlink() as nl:
            link = nl.get_link(hostif)
            if link is None:
                raise InvalidValue(f'host interface "{hostif}" does not exist')
            if link.kind == "bridge" or len(link.mac) != 6:
                raise InvalidValue(f'"{hostif}" is not a physical Ethernet interface')
            rec: Record = {"hostif": hostif, "shim": None, "shim_ip": None}
            if shim is not None:
                rec.update(_make_shim(nl, link.index, link.mtu, hostif, shim, shim_ip, timing))
        state.write(rec, "lan", "macvlan")
    return rec


def _make_shim(
    nl: object, parent: int, mtu: int, hostif: str, shim: str, wanted: IP | None, timing: Timing
) -> Record:
    from netplumb.kernel import arp, lanlink
    from netplumb.kernel.netlink import Netlink
    from netplumb.model.names import check_ifname

    assert isinstance(nl, Netlink)
    shim = check_ifname(shim, "shim name")
    pool = get_pool()
    if pool is None:
        raise NetplumbError(
            "the shim routes the LAN pool's range: declare the pool first (netplumb lan pool set)"
        )
    if nl.get_link(shim) is not None:
        raise Conflict(f'cannot create shim "{shim}": an interface of that name exists')
    ip = claim(pool, SHIM_HOLDER, wanted, hostif, timing)
    try:
        nl.create_link(
            shim,
            "macvlan",
            mtu=mtu,
            link=parent,
            info_data=struct.pack("=HHI", 8, 1, 4),  # IFLA_MACVLAN_MODE = bridge
            what=f'cannot add macvlan shim "{shim}" on "{hostif}"',
        )
        link = nl.get_link(shim)
        if link is None:
            raise KernelError(f'cannot find shim "{shim}"', 19)
        try:
            nl.set_link(link.index, alias=SHIM_MARK + hostif, what=f'cannot mark "{shim}"')
            # Answer ARP only for the shim's own address: the host's main address stays at
            # the host interface's MAC in the LAN's caches.
            lanlink.write_sysctl(f"/proc/sys/net/ipv4/conf/{shim}/arp_ignore", "1")
            nl.add_address(link.index, ip.family, ip.packed, 32, what=f"cannot add {ip} to {shim}")
            nl.set_link(link.index, up=True, what=f'cannot set "{shim}" up')
            for cidr in pool.cidrs():
                lanlink.add_route(nl, _link_route(cidr, ip, link.index), link.index, shim)
            arp.announce(shim, ip, timing)
        except BaseException:
            nl.delete_link(link.index, f'cannot delete shim "{shim}"')
            raise
    except BaseException:
        release(ip, SHIM_HOLDER)
        raise
    return {"shim": shim, "shim_ip": str(ip)}


def _link_route(dst: Interface, src: IP, oif: int) -> layout.Route:
    attrs = (
        (layout.RTA_TABLE, struct.pack("=I", 254)),
        (layout.RTA_DST, dst.ip.packed),
        (layout.RTA_PREFSRC, src.packed),
        (layout.RTA_OIF, struct.pack("=I", oif)),
    )
    return layout.Route(layout.AF_INET, dst.prefixlen, 0, 0, 254, 4, 253, 1, 0, attrs)


def macvlan_remove() -> Record:
    from netplumb.kernel.netlink import Netlink
    from netplumb.ops import lanbridge

    with lanbridge.lock():
        rec = state.read("lan", "macvlan")
        if rec is None:
            raise NetplumbError("the LAN is not in macvlan mode (netplumb lan status)")
        shim = rec.get("shim")
        if shim:
            with Netlink() as nl:
                link = nl.get_link(str(shim))
                if link is not None and link.alias == SHIM_MARK + str(rec["hostif"]):
                    nl.delete_link(link.index, f'cannot delete shim "{shim}"')
            release(str(rec["shim_ip"]), SHIM_HOLDER)
        state.remove("lan", "macvlan")
    return rec
