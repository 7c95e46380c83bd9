"""Networks (a bridge with a subnet and gateway) and their address management.

Addresses are leased from a per-network folder in the state directory (one entry per address)
under an exclusive ``flock``: two commands, even run in parallel, never hand out one address
twice. A network's bridge carries the mark ``netplumb:network:<name>`` and the gateway
address; netplumb turns on ``route_localnet`` on that bridge only (never on ``all``:
Kubernetes' CVE-2020-8558), so that ports published on 127.0.0.1 can be forwarded to its
guests, and IP forwarding in the namespace, as Docker does for docker0.
"""

from __future__ import annotations

import os

from netplumb import state
from netplumb.errors import Conflict, KernelError, NetplumbError
from netplumb.kernel.netlink import Netlink
from netplumb.model.ip import IP, Interface
from netplumb.model.network import (
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    DEFAULT_SUBNET,
    DEFAULT_SUBNET6,
    Network,
    make_network,
)
from netplumb.state import addresses
from netplumb.state.lock import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

# The address leases of every network are a table of the records (state/addresses.py); they
# are part of this module's API, where every use case has always found them.
lease = addresses.lease
leases = addresses.leases
leases_of = addresses.leases_of
release = addresses.release
release_many = addresses.release_many
release_address = addresses.release_address
indexed_owners = addresses.indexed_owners


def network_mark(name: str) -> str:
    return f"netplumb:network:{name}"


def get(name: str) -> Network | None:
    rec = state.read("networks", name)
    return Network.from_record(rec) if rec else None


def names() -> list[str]:
    return state.names("networks")


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise KernelError(f"cannot set {path.removeprefix('/proc/sys/')}", exc.errno or 1) from None


def ensure_kernel(net: Network) -> None:
    """Make the bridge, its gateway address, route_localnet and forwarding exist (idempotent)."""
    from netplumb.kernel import dockeruser

    mark = network_mark(net.name)
    with Netlink() as nl:
        link = nl.get_link(net.bridge)
        created = link is None
        if link is None:
            nl.create_link(
                net.bridge, "bridge", up=True, mtu=net.mtu, what=f'cannot add bridge "{net.bridge}"'
            )
            link = nl.get_link(net.bridge)
            assert link is not None
            nl.set_link(link.index, alias=mark, what=f'cannot mark bridge "{net.bridge}"')
        elif link.kind != "bridge":
            raise Conflict(
                f'cannot use "{net.bridge}" for network {net.name}: '
                f"it is a {link.kind or 'device'}, not a bridge"
            )
        elif link.alias != mark:
            raise Conflict(
                f'cannot use bridge "{net.bridge}" for network {net.name}: '
                f"it is not netplumb's ({link.alias or 'no mark'})"
            )
        have = {(a.address, a.prefixlen) for a in nl.addresses() if a.index == link.index}
        for gw in net.gateways:
            if (gw.ip.packed, gw.prefixlen) not in have:
                nl.add_address(
                    link.index,
                    gw.ip.family,
                    gw.ip.packed,
                    gw.prefixlen,
                    what=f"cannot add {gw} to {net.bridge}",
                )
        if not link.up:
            nl.set_link(link.index, up=True, what=f"cannot set {net.bridge} up")
        if created:  # an existing bridge got its rules then; reconcile repairs drift
            dockeruser.sync(nl)
    for gw in net.gateways:
        if gw.version == 4:
            _write_sysctl(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet", "1")
            _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        else:
            _write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")


def create(net: Network) -> Network:
    with Lock("networks.lock"):
        existing = get(net.name)
        if existing is not None and existing != net:
            raise Conflict(
                f"network {net.name} exists with another definition "
                f"({existing.subnet} on {existing.bridge})"
            )
        for other in names():
            o = get(other)
            if (
                o is not None
                and o.name != net.name
                and (o.bridge == net.bridge or _overlap(o, net))
            ):
                raise Conflict(
                    f"network {net.name} clashes with network {o.name} ({o.subnet} on {o.bridge})"
                )
        if existing is None:
            _check_free(net)
            # The record first: killed anywhere after this (a `kill -9` of `up`), `rm` and
            # `down` find the network and remove whatever of it was made.
            state.write(net.to_record(), "networks", net.name)
        try:
            ensure_kernel(net)
        except BaseException:
            if existing is None:
                _undo_create(net)
            raise
    if existing is None:
        _ruleset_changed()
    return net


def _undo_create(net: Network) -> None:
    """A new network whose kernel side failed halfway: its bridge (if marked) and record go."""
    with Netlink() as nl:
        link = nl.get_link(net.bridge)
        if link is not None and link.alias == network_mark(net.name):
            nl.delete_link(link.index, f'cannot delete bridge "{net.bridge}"')
    state.remove("networks", net.name)


def _ruleset_changed() -> None:
    """A network came or went: its guard, masquerade (and isolation) rules are part of the
    whole ruleset, which is written again from the records (deferred to the end of a
    ``ports.batch()``). Here, so that every way of making or removing a network does it."""
    from netplumb.ops import portrules

    portrules.sync()


def _check_free(net: Network) -> None:
    """Refuse a subnet that overlaps an address this machine already has: its LAN would
    become unreachable through the new bridge's route."""
    with Netlink() as nl:
        names = {ln.index: ln.name for ln in nl.links()}
        addrs = nl.addresses()
    for mine in net.gateways:
        for a in addrs:
            if len(a.address) != (4 if mine.version == 4 else 16):
                continue
            other = Interface(IP(a.address), a.prefixlen)
            if names.get(a.index) == net.bridge or other.ip.is_loopback:
                continue
            lo = max(other.network_int, mine.network_int)
            hi = min(other.broadcast_int, mine.broadcast_int)
            if lo <= hi and not other.ip.packed.startswith(b"\xfe\x80"):
                raise Conflict(
                    f"cannot create network {net.name}: {mine.ip}/{mine.prefixlen} overlaps "
                    f"{other} on {names.get(a.index, a.index)} (choose another subnet)"
                )


def _overlap(a: Network, b: Network) -> bool:
    for ga in a.gateways:
        for gb in b.gateways:
            if ga.version == gb.version and (
                ga.network_int <= gb.broadcast_int and gb.network_int <= ga.broadcast_int
            ):
                return True
    return False


_ensured: set[str] = set()


def default() -> Network:
    """The default network (like docker0), created on first use; its kernel objects are
    checked once per process (a process starting many hosts pays for it once)."""
    net = get(DEFAULT_NETWORK)
    if net is not None:
        if net.name not in _ensured:
            ensure_kernel(net)
            _ensured.add(net.name)
        return net
    return create(default_definition())


def default_definition() -> Network:
    """The default network as ``default()`` makes it when it does not exist yet."""
    subnet = os.environ.get("NETPLUMB_DEFAULT_SUBNET", DEFAULT_SUBNET)
    subnet6: str | None = os.environ.get("NETPLUMB_DEFAULT_SUBNET6", DEFAULT_SUBNET6)
    if subnet6 in ("", "none"):
        subnet6 = None
    return make_network(DEFAULT_NETWORK, DEFAULT_BRIDGE, subnet, subnet6=subnet6)


def remove(name: str) -> None:
    from netplumb.kernel import dockeruser

    with Lock("networks.lock"):
        net = get(name)
        if net is None:
            raise NetplumbError(f"network {name} not found")
        held = leases(name)
        if held:
            raise Conflict(
                f"network {name} has active endpoints: {', '.join(sorted(set(held.values())))}"
            )
        with Netlink() as nl:
            link = nl.get_link(net.bridge)
            if link is not None and link.alias == network_mark(name):
                nl.delete_link(link.index, f'cannot delete bridge "{net.bridge}"')
            dockeruser.sync(nl)
        state.remove("networks", name)
        addresses.drop(name)
    _ruleset_changed()


def by_bridge(bridge: str) -> Network | None:
    for name in names():
        net = get(name)
        if net is not None and net.bridge == bridge:
            return net
    return None


def describe(net: Network) -> Record:
    return {**net.to_record(), "subnet": net.subnet, "leases": leases(net.name)}
