"""Containers on the LAN: an interface with a pool address (claimed after an ARP probe,
announced once up) or a DHCP client, through the attach engine.

Apart from ``lanpool`` (the lease table and macvlan mode) because the engine itself takes
pool addresses for ``attach`` on the LAN's bridge: the table sits below the engine, this use
case above it.
"""

from __future__ import annotations

from netplumb.errors import NetplumbError
from netplumb.kernel import arp, netns
from netplumb.model.addresses import AddressSpec
from netplumb.model.attach import AttachRequest, DhcpSpec
from netplumb.ops import engine, lanpool
from netplumb.runtimes.guests import resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.lan.arp import Timing
    from netplumb.model.ip import IP
    from netplumb.model.mac import Mac


def attach(
    guest: str,
    ifname: str = "eth1",
    ip: IP | None = None,
    dhcp: bool = False,
    mac: Mac | None = None,
    timing: Timing | None = None,
) -> str:
    """Give ``guest`` an interface on the LAN: a pool address (probed, announced) or DHCP."""
    timing = timing or arp.timing_from_env()
    host_if, dev = lanpool.lan_target()
    with resolve(guest) as g:
        holder = engine.record_name(g.key, ifname)
    if dhcp:
        req = AttachRequest(guest, host_if, ifname, dhcp=DhcpSpec(), mac=mac)
        engine.attach(req)
        return "dhcp"
    pool = lanpool.get_pool()
    if pool is None:
        raise NetplumbError(
            "no LAN pool: declare one with netplumb lan pool set SUBNET --range A-B"
        )
    addr = lanpool.claim(pool, holder, ip, dev, timing)
    spec = AddressSpec(pool.interface(addr), pool.gateway)
    try:
        engine.attach(
            AttachRequest(guest, host_if, ifname, addresses=(spec,), mac=mac), lan_checked=True
        )
        with resolve(guest) as g, netns.entered(g.fd):
            arp.announce(ifname, addr, timing)
    except BaseException:
        lanpool.release(addr, holder)
        raise
    return str(addr)


def detach(guest: str, ifname: str = "eth1") -> None:
    with resolve(guest) as g:
        holder = engine.record_name(g.key, ifname)
    engine.detach(guest, ifname)
    lanpool.release_holder(holder)
