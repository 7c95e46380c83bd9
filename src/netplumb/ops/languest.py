"""Containers on the LAN: an interface with a pool address (claimed after an ARP probe,
announced once up) or a DHCP client, through the attach engine.

``lan attach`` with a pool address is one plan executed by the one applier (``ops/apply.py``):
claim the address (ARP probe, pool lease), the attach planner's actions for it, the
announcement; a failure anywhere undoes all of it. ``--dry-run`` prints the same plan. With
DHCP it is an ``attach`` (the engine's plan). ``lan detach`` is ``detach``'s plan and the
release of the pool's leases.

Apart from ``lanpool`` (the lease table and macvlan mode) because the engine itself takes
pool addresses for ``attach`` on the LAN's bridge: the table sits below the engine, this use
case above it.
"""

from __future__ import annotations

from netplumb.errors import Conflict, NetplumbError
from netplumb.kernel import arp, netns
from netplumb.model.addresses import AddressSpec
from netplumb.model.attach import AttachRequest, DhcpSpec
from netplumb.ops import apply as applier
from netplumb.ops import engine, lanpool
from netplumb.ops.attachpart import AttachPart
from netplumb.plan.lan import AnnounceLan, ClaimLanAddress
from netplumb.runtimes.guests import resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from netplumb.lan.arp import Timing
    from netplumb.lan.pool import LanPool
    from netplumb.model.ip import IP
    from netplumb.model.mac import Mac
    from netplumb.plan.actions import Action
    from netplumb.runtimes.guest import Guest


def _pool() -> LanPool:
    pool = lanpool.get_pool()
    if pool is None:
        raise NetplumbError(
            "no LAN pool: declare one with netplumb lan pool set SUBNET --range A-B"
        )
    return pool


def _dry_address(pool: LanPool, ip: IP | None) -> tuple[IP, bool]:
    """The address a claim would take, as the pool stands now (refused as the claim would)."""
    leases = lanpool.leases()
    if ip is not None:
        pool.check_wanted(ip)
        theirs = leases.get(str(ip))
        if theirs is not None and not theirs.startswith("arp:"):
            raise Conflict(f"address {ip} is already leased on the LAN (by {theirs})")
        return ip, True
    free = next(iter(pool.candidates(set(leases))), None)
    if free is None:
        raise Conflict(f"no free address left in the LAN pool {pool.first}-{pool.last}")
    return free, False


class _Attach:
    """One ``lan attach`` with a pool address: its plan and how each action is executed."""

    def __init__(
        self,
        target: tuple[str, str],
        g: Guest,
        guest: str,
        ifname: str,
        ip: IP | None,
        mac: Mac | None,
        timing: Timing,
    ) -> None:
        self.g, self.guest, self.ifname, self.ip, self.mac = g, guest, ifname, ip, mac
        self.timing = timing
        self.host_if, self.dev = target
        self.pool = _pool()
        self.holder = engine.record_name(g.key, ifname)
        self.addr: IP | None = None
        self.done: list[Callable[[], None]] = []
        self.part: AttachPart | None = None

    def steps(self, dry_run: bool) -> Iterator[Action]:
        if dry_run:
            addr, chosen = _dry_address(self.pool, self.ip)
        else:
            addr, chosen = self.ip or self.pool.first, self.ip is not None
        yield ClaimLanAddress(addr, chosen, self.holder)
        addr = self.addr or addr  # the address the claim took
        spec = AddressSpec(self.pool.interface(addr), self.pool.gateway)
        req = AttachRequest(self.guest, self.host_if, self.ifname, addresses=(spec,), mac=self.mac)
        self.part = AttachPart(self.g, req)
        yield from self.part.steps(self.done, lan_checked=True, dry_run=dry_run)
        yield AnnounceLan(self.ifname, addr)

    def execute(self, action: Action) -> Callable[[], None] | None:
        if isinstance(action, ClaimLanAddress):
            wanted = action.ip if action.chosen else None
            addr = self.addr = lanpool.claim(self.pool, self.holder, wanted, self.dev, self.timing)
            holder = self.holder
            return lambda: lanpool.release(addr, holder)
        if isinstance(action, AnnounceLan):
            with netns.entered(self.g.fd):
                arp.announce(action.ifname, action.ip, self.timing)
            return None
        assert self.part is not None
        return self.part.execute(action)

    def close(self) -> None:
        if self.part is not None:
            self.part.close()


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
    target = lanpool.lan_target()
    if dhcp:
        engine.attach(AttachRequest(guest, target[0], ifname, dhcp=DhcpSpec(), mac=mac))
        return "dhcp"
    with resolve(guest) as g:
        run = _Attach(target, g, guest, ifname, ip, mac, timing)
        try:
            applier.apply(run.steps(False), run.execute, undo=run.done)
        finally:
            run.close()
    return str(run.addr)


def attach_plan(
    guest: str,
    ifname: str = "eth1",
    ip: IP | None = None,
    dhcp: bool = False,
    mac: Mac | None = None,
) -> list[Action]:
    """``lan attach --dry-run``: the plan, changing nothing (no probe is sent)."""
    target = lanpool.lan_target()
    if dhcp:
        req = AttachRequest(guest, target[0], ifname, dhcp=DhcpSpec(), mac=mac)
        return engine.attach(req, dry_run=True)
    with resolve(guest) as g:
        run = _Attach(target, g, guest, ifname, ip, mac, arp.timing_from_env())
        try:
            return list(run.steps(True))
        finally:
            run.close()
