"""Containers on the LAN: the address pool with locked, persistent leases, ARP probing before an
address is used and announcing after, and macvlan mode with its host-side shim.

Why not a netplumb network record for the LAN: ``networks`` owns its bridge's gateway address,
refuses a subnet that overlaps one of the host's (the LAN's, by definition), and its records
drive the nftables rules (masquerading, isolation). The LAN is none of netplumb's: its
gateway is the LAN's router. So the LAN has its own table, ``%lan``, of the allocator every
lease uses (``state/leases.py``); what is the LAN's own is its candidates (the pool's range,
lowest first, less the addresses an ARP probe found in use) and its expiry: an address someone
answered for is held by ``arp:<MAC>`` for ``ARP_HOLD``, and a lease whose attach record never
appeared goes after ``STALE`` (both by the lease's time, its entry's ``lstat``).
"""

from __future__ import annotations

import os
import struct
import time

from netplumb import state
from netplumb.errors import Conflict, InvalidValue, KernelError, NetplumbError
from netplumb.lan import layout
from netplumb.lan.arp import Timing
from netplumb.lan.pool import LanPool
from netplumb.model.ip import IP, Interface
from netplumb.model.mac import Mac
from netplumb.state import leases as alloc
from netplumb.state.lock import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

ARP_HOLD = 600.0  # an address someone answered for is skipped for this long
STALE = 120.0  # a lease whose attach record never appeared (the command died) after this long
SHIM_MARK = "netplumb:lan-shim:"
SHIM_HOLDER = "lan-shim"


TABLE = "%lan"  # the pool's table of the allocator (state/leases.py)
OLD_LEASES = ("lan", "leases")  # the table before the allocator: {address: [holder, since]}


def lock() -> Lock:
    """The pool's lock (the allocator's lock of its table): held while the pool or its leases
    change. Moves the leases of the layout before the allocator into the table the first time."""
    return _Migrating(*alloc.lock(TABLE).parts)


class _Migrating(Lock):
    __slots__ = ()

    def __enter__(self) -> Lock:
        super().__enter__()
        if os.path.exists(state.path(*OLD_LEASES)):
            _migrate()
        return self


def _migrate() -> None:
    """Each lease of ``lan/leases`` (an older netplumb's) becomes an entry of the table, with
    its holder and its time (ARP holds and stale leases expire by it); then the file goes."""
    rec = state.read(*OLD_LEASES) or {}
    for ip, value in rec.items():
        holder, since = str(value[0]), float(value[1])
        if alloc.take(TABLE, str(ip), holder) is None:
            entry = state.path(alloc.LEASES, TABLE, str(ip))
            os.utime(entry, (since, since), follow_symlinks=False)
    state.remove(*OLD_LEASES)


# -- the pool ---------------------------------------------------------------------------------


def get_pool() -> LanPool | None:
    rec = state.read("lan", "pool")
    return LanPool.from_record(rec) if rec else None


def set_pool(pool: LanPool) -> None:
    with lock():
        held = [ip for ip, h in alloc.held(TABLE).items() if not h.startswith("arp:")]
        outside = [ip for ip in held if not pool.subnet.contains(IP.parse(ip))]
        if outside:
            raise Conflict(f"addresses {', '.join(outside)} are leased outside {pool.subnet}")
        state.write(pool.to_record(), "lan", "pool")


def remove_pool() -> None:
    with lock() as lk:
        table = alloc.held(TABLE)
        held = sorted({h for h in table.values() if not h.startswith("arp:")})
        if held:
            raise Conflict(f"the LAN pool has leases: {', '.join(held)}")
        state.remove("lan", "pool")
        for ip, holder in table.items():  # ARP holds
            alloc.free(lk, TABLE, ip, holder)


def leases() -> dict[str, str]:
    """address -> holder, lowest first (ARP holds as ``arp:<MAC>``)."""
    table = alloc.held(TABLE)
    if os.path.exists(state.path(*OLD_LEASES)):  # not migrated yet: a reader changes nothing
        old = state.read(*OLD_LEASES) or {}
        table.update({str(k): str(v[0]) for k, v in old.items()})
    return dict(sorted(table.items(), key=lambda kv: IP.parse(kv[0]).as_int))


def _prune(lk: Lock, now: float) -> None:
    """Free what has expired: ARP holds after ``ARP_HOLD``, a lease whose attach record never
    appeared after ``STALE`` (its command died between lease and attach, or it was removed)."""
    for ip, holder, since in alloc.aged(TABLE, min(STALE, ARP_HOLD), now):
        if _expired(holder, now - since):
            alloc.free(lk, TABLE, ip, holder)


def _expired(holder: str, age: float) -> bool:
    if holder.startswith("arp:"):
        return age > ARP_HOLD
    return "@" in holder and age > STALE and state.read("attach", holder) is None


def lease(pool: LanPool, holder: str, wanted: IP | None, skip: set[str]) -> IP:
    """Lease ``wanted`` (checked against the pool) or the lowest free address of the range."""
    if wanted is not None:
        pool.check_wanted(wanted)
    with lock() as lk:
        _prune(lk, time.time())
        if wanted is not None:
            theirs = alloc.holder(TABLE, str(wanted))
            # an address someone answered for is asked again: the probe decides
            if theirs is not None and theirs.startswith("arp:"):
                alloc.free(lk, TABLE, str(wanted), theirs)
            theirs = alloc.take(TABLE, str(wanted), holder)
            if theirs is not None:
                raise Conflict(f"address {wanted} is already leased on the LAN (by {theirs})")
            # leased anew (it may have been the holder's already): its STALE clock restarts
            os.utime(state.path(alloc.LEASES, TABLE, str(wanted)), follow_symlinks=False)
            return wanted
        gateway = pool.gateway.as_int if pool.gateway is not None else -1
        found = alloc.take_lowest(
            lk,
            TABLE,
            holder,
            (pool.first.as_int, pool.last.as_int),
            lambda n: str(IP(n.to_bytes(4, "big"))),
            reserved=lambda n: n == gateway,
            usable=lambda key: key not in skip,
        )
        if found is None:
            raise Conflict(f"no free address left in the LAN pool {pool.first}-{pool.last}")
        return IP.parse(found)


def release(ip: IP | str, holder: str, arp_holder: Mac | None = None) -> None:
    """Release ``ip`` if ``holder`` has it; with ``arp_holder``, remember who answered for it."""
    with lock() as lk:
        if alloc.free(lk, TABLE, str(ip), holder) and arp_holder is not None:
            alloc.take(TABLE, str(ip), f"arp:{arp_holder}")


def release_holder(holder: str) -> None:
    """Release every address ``holder`` has in the pool."""
    with lock():
        pass  # migrates an older netplumb's table first, so its leases are found
    alloc.release_owner(holder, lambda t: t == TABLE)


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
