"""Published ports: publishing, unpublishing and listing a guest's ports (``-p``, ``port``).

Publishing is done in the kernel (DNAT), with no userland proxy process per port. The parts:
choosing host ports and refusing conflicts (``portchoice.py``), the records (``portrecords.py``,
indexed by ``portindex.py``), and netplumb's nftables tables (``portrules.py``), where a
publication is one map element added or deleted on its own.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.model.ip import IP
from netplumb.model.ports import PortMapping, parse_expose, parse_port_spec
from netplumb.ops import portrules
from netplumb.ops.apply import apply
from netplumb.ops.portchoice import choose_port, ip_text
from netplumb.ops.portrules import (
    at_batch_end,
    batch,
    guests_came,
    guests_went,
    in_batch,
    isolation_changed,
    sync,
)
from netplumb.ops.ruleinputs import isolation_in_use
from netplumb.plan import ports as plan
from netplumb.plan.ports import PublishPort, UnpublishPort
from netplumb.state import portindex, portrecords
from netplumb.state.portrecords import bindings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record

__all__ = [
    "at_batch_end",
    "batch",
    "binding_lines",
    "bindings",
    "drop_stale_index",
    "guest_addresses",
    "guests_came",
    "guests_went",
    "in_batch",
    "isolation_changed",
    "isolation_in_use",
    "plan_publish",
    "plan_unpublish",
    "port_lines",
    "publish",
    "publish_mappings",
    "release",
    "release_many",
    "sync",
    "unpublish",
]


# -- container addresses ----------------------------------------------------------------------


def guest_addresses(guest_ref: str) -> dict[int, str]:
    """The guest's address the machine reaches directly, per family (4 and/or 6).

    For a netplumb host, its network addresses; otherwise the first global address of the guest
    that lies in a subnet the machine itself has an address in.
    """
    rec = state.read("hosts", guest_ref)
    if rec is not None and rec.get("networks"):
        out: dict[int, str] = {}
        for n in rec["networks"]:
            for key in ("ip", "ip6"):
                if n.get(key):
                    ip = IP.parse(str(n[key]))
                    out.setdefault(ip.version, str(ip))
        return out
    from netplumb.kernel import netns
    from netplumb.kernel.netlink import Netlink
    from netplumb.model.ip import Interface
    from netplumb.runtimes.guests import resolve

    with Netlink() as nl:
        mine = [
            Interface(IP(a.address), a.prefixlen)
            for a in nl.addresses()
            if len(a.address) in (4, 16)
        ]
    found: dict[int, str] = {}
    with resolve(guest_ref) as guest, netns.socket_in(guest.fd) as gnl:
        for a in gnl.addresses():
            if len(a.address) not in (4, 16):
                continue
            ip = IP(a.address)
            if ip.is_loopback or a.address.startswith(b"\xfe\x80"):
                continue
            if any(m.contains(ip) and m.prefixlen == a.prefixlen for m in mine):
                found.setdefault(ip.version, str(ip))
    return found


# -- publish / unpublish / port ------------------------------------------------------------------


def publish(
    owner: str,
    guest_name: str,
    specs: list[str],
    publish_all_of: list[str] | None = None,
    addresses: dict[int, str] | None = None,
) -> list[Record]:
    """Publish ``specs`` (Docker -p values) and, for -P, every exposed port in
    ``publish_all_of`` without a binding; returns the new bindings. Atomic. ``addresses``
    (per family) when the caller knows the guest's addresses (the CNI plugin)."""
    mappings: list[PortMapping] = []
    for spec in specs:
        mappings += parse_port_spec(spec)
    return publish_mappings(owner, guest_name, mappings, publish_all_of, addresses)


def publish_mappings(
    owner: str,
    guest_name: str,
    mappings: list[PortMapping],
    publish_all_of: list[str] | None = None,
    addresses: dict[int, str] | None = None,
) -> list[Record]:
    """``publish`` of resolved mappings (``run``'s, ``up``'s): nothing parsed again. The plan
    (``plan_publish``) applied with ``ops/apply.py``: each publication's records and index
    entries are undone if a later one fails; the map elements of all of them are then added in
    one kernel transaction (the commit: all or nothing, and one nftables commit, whose RCU
    grace period costs wall time per transaction), which undoes the records if it fails."""
    mappings = list(mappings)
    if publish_all_of:
        bound = {(m.container_port, m.proto) for m in mappings}
        for spec in publish_all_of:
            for port, proto in parse_expose(spec):
                if (port, proto) not in bound:
                    mappings.append(PortMapping(None, 0, port, proto))
    if not mappings:
        return []
    actions = plan_publish(guest_name, mappings, addresses)
    run = _Publisher(owner, guest_name)
    with portrules.PortsLock():
        apply(actions, run, commit=lambda: portrules.changed(run.new, []))
    return run.new


def plan_publish(
    guest_name: str, mappings: list[PortMapping], addresses: dict[int, str] | None = None
) -> list[PublishPort]:
    """The plan of ``publish`` and of its ``--dry-run`` (reads only)."""
    if addresses is None:
        plan.check_mappings(mappings)  # before looking the guest's addresses up
        addresses = guest_addresses(guest_name) if mappings else {}
    return plan.plan_publish(guest_name, mappings, addresses)


class _Publisher:
    """Executes ``PublishPort``: chooses the host port (under the ports lock) and records the
    bindings; returns the undo of both. The kernel's elements come at the commit."""

    def __init__(self, owner: str, guest_name: str) -> None:
        self.owner = owner
        self.guest = guest_name
        self.new: list[Record] = []  # this plan's bindings so far (its ports are taken)

    def __call__(self, action: PublishPort) -> Callable[[], None]:
        m, owner = action.mapping, self.owner
        port = choose_port(m, [ip.version for ip in action.ips], self.new)
        new: list[Record] = [
            {
                "owner": owner,
                "guest": self.guest,
                "family": ip.version,
                "host_ip": str(m.host_ip) if m.host_ip else None,
                "host_port": port,
                "container_ip": str(ip),
                "container_port": m.container_port,
                "proto": m.proto,
            }
            for ip in action.ips
        ]
        before = portrecords.add(owner, self.guest, new)  # appended: O(1) in the owner's ports
        try:
            portindex.add(new)
        except BaseException:
            portindex.drop(new)
            portrecords.undo_add(owner, before)
            raise
        self.new += new

        def undo() -> None:
            portindex.drop(new)
            portrecords.undo_add(owner, before)

        return undo


def unpublish(owner: str, specs: list[str]) -> int:
    """Remove the bindings the specs name (by container port/proto and, if given, host side):
    ``plan_unpublish``'s plan, applied (the records first, then the elements in one kernel
    transaction, as ``publish_mappings``); how many."""
    wanted: list[PortMapping] = []
    for spec in specs:
        wanted += parse_port_spec(spec)
    with portrules.PortsLock():
        loaded = portrecords.load(owner)
        actions = plan.plan_unpublish(loaded[0], wanted)
        if actions:  # nothing to unpublish reaches no kernel
            gone = [a.binding for a in actions]
            apply(actions, _Unpublisher(owner, loaded), commit=lambda: portrules.changed([], gone))
    return len(actions)


def plan_unpublish(owner: str, wanted: list[PortMapping]) -> list[UnpublishPort]:
    """The plan of ``unpublish``'s ``--dry-run`` (reads only)."""
    return plan.plan_unpublish(bindings(owner) if portrecords.exists(owner) else [], wanted)


class _Unpublisher:
    """Executes ``UnpublishPort``: the binding leaves the records and the index; its undo
    puts it back in both. The kernel's elements go at the commit."""

    def __init__(self, owner: str, loaded: tuple[list[Record], int]) -> None:
        self.owner = owner
        # the records as read under the lock, kept current by each drop
        self.loaded: tuple[list[Record], int] | None = loaded

    def __call__(self, action: UnpublishPort) -> Callable[[], None]:
        b = action.binding
        self.loaded = portrecords.drop(self.owner, [b], self.loaded)
        portindex.drop([b])

        def undo() -> None:
            portrecords.add(self.owner, str(b.get("guest") or ""), [b])
            portindex.add([b])
            self.loaded = None  # read again by a later drop

        return undo


def release(owner: str) -> bool:
    """Remove every binding of ``owner`` (rm, detach, gc); True if there were any."""
    return bool(release_many([owner]))


def release_many(owners: list[str]) -> list[str]:
    """Remove every binding of each owner under one lock and one nftables transaction; returns
    the owners that had any."""
    mine = [o for o in owners if portrecords.exists(o)]
    if not mine:
        return []
    done = []
    gone: list[Record] = []
    with portrules.PortsLock():
        for owner in mine:
            if not portrecords.exists(owner):
                continue
            theirs = portrecords.bindings(owner)
            state.remove("ports", owner)
            portindex.drop(theirs)
            gone += theirs
            done.append(owner)
        if done:
            portrules.changed([], gone)
    return done


def drop_stale_index() -> int:
    """Remove port index entries no record backs (a crash between the two writes); ``gc``."""
    with portrules.PortsLock():
        return portindex.drop_stale(bindings)


def _natural(text: str) -> list[object]:
    """``text`` split as ``re.split(r"(\\d+)", text)`` splits it, its runs of digits made
    numbers (so port 8080 sorts after port 443). Without ``re``: its import costs the hot
    commands ~5 ms."""
    out: list[object] = []
    start, digits = 0, False
    for i, c in enumerate(text):
        if c.isdecimal() != digits:
            out.append(int(text[start:i]) if digits else text[start:i])
            start, digits = i, not digits
    out.append(int(text[start:]) if digits else text[start:])
    if digits:
        out.append("")
    return out


def binding_lines(records: list[Record]) -> list[str]:
    """Bindings as ``docker port NAME`` prints them, sorted as ``port_lines`` says."""
    middles: dict[tuple[object, ...], str] = {}
    rows = []
    for b in records:
        mk = (b.get("host_ip"), b["family"], b["proto"])
        middle = middles.get(mk)
        if middle is None:
            middle = middles[mk] = f"/{mk[2]} -> {ip_text(mk[0], int(mk[1]))}:"
        rows.append((int(b["container_port"]), middle, int(b["host_port"])))
    keys = {m: tuple(_natural(m)) for m in middles.values()}
    order = sorted(set(keys.values()))
    rank = {m: order.index(k) for m, k in keys.items()}
    ranked = [(p, rank[m], h, i, m) for i, (p, m, h) in enumerate(rows)]
    ranked.sort()  # the index: equal keys keep their order, as sorting by key does
    return [f"{port}{middle}{host_port}" for port, _, host_port, _, middle in ranked]


def port_lines(owner: str, name: str, which: str | None) -> list[str]:
    """What ``docker port NAME [PORT[/PROTO]]`` prints, and its error when nothing matches.

    Sorted as people read numbers (``_natural``: port 8080 after port 443). A line is
    ``PORT`` + ``/PROTO -> ADDRESS:`` + ``HOSTPORT``; the middle part's key never is a prefix
    of another's (it ends with its own last characters), so sorting by (port, the middle's
    rank, host port) is sorting by the whole line's key, and the middles, which few bindings
    differ in, are keyed once (``binding_lines``): a guest with 1,000 ports would otherwise
    cost ~5 ms more per listing."""
    if which is None:
        return binding_lines(bindings(owner))
    port, _, proto = which.partition("/")
    wanted = f"{port}/{(proto or 'tcp').lower()}"
    hits = [
        f"{ip_text(b.get('host_ip'), int(b['family']))}:{b['host_port']}"
        for b in bindings(owner)
        if f"{b['container_port']}/{b['proto']}" == wanted
    ]
    hits.sort(key=_natural)
    if not hits:
        raise NetplumbError(f"Error: No public port '{which}' published for {name}")
    return hits
