"""Networks (a bridge with a subnet and gateway) and their address management.

Addresses are leased from a per-network table in the state directory under an exclusive
``flock``: two commands, even run in parallel, never hand out one address twice. A network's
bridge carries the mark ``netplumb:network:<name>`` and the gateway address; netplumb turns on
``route_localnet`` on that bridge only (never on ``all``: Kubernetes' CVE-2020-8558), so that
ports published on 127.0.0.1 can be forwarded to its guests, and IP forwarding in the
namespace, as Docker does for docker0.
"""

from __future__ import annotations

import os

from netplumb import state
from netplumb.errors import Conflict, KernelError, NetplumbError
from netplumb.kernel.netlink import Netlink
from netplumb.model.ip import IP
from netplumb.model.network import (
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    DEFAULT_SUBNET,
    DEFAULT_SUBNET6,
    Network,
    allocate,
    make_network,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def network_mark(name: str) -> str:
    return f"netplumb:network:{name}"


class _Lock:
    """An exclusive flock on a file in the state directory, for the ``with`` block."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        state.ensure_dir(*self.parts[:-1])
        self.fd = os.open(state.path(*self.parts), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


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
    for gw in net.gateways:
        if gw.version == 4:
            _write_sysctl(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet", "1")
            _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        else:
            _write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
    dockeruser.allow_network(net.bridge)


def create(net: Network) -> Network:
    with _Lock("networks.lock"):
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
        ensure_kernel(net)
        state.write(net.to_record(), "networks", net.name)
    return net


def _check_free(net: Network) -> None:
    """Refuse a subnet that overlaps an address this machine already has: its LAN would
    become unreachable through the new bridge's route."""
    from netplumb.model.ip import Interface

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
    subnet = os.environ.get("NETPLUMB_DEFAULT_SUBNET", DEFAULT_SUBNET)
    subnet6: str | None = os.environ.get("NETPLUMB_DEFAULT_SUBNET6", DEFAULT_SUBNET6)
    if subnet6 in ("", "none"):
        subnet6 = None
    return create(make_network(DEFAULT_NETWORK, DEFAULT_BRIDGE, subnet, subnet6=subnet6))


def remove(name: str) -> None:
    from netplumb.kernel import dockeruser

    with _Lock("networks.lock"):
        net = get(name)
        if net is None:
            raise NetplumbError(f"network {name} not found")
        leases = _leases(name)
        if leases:
            raise Conflict(
                f"network {name} has active endpoints: {', '.join(sorted(set(leases.values())))}"
            )
        with Netlink() as nl:
            link = nl.get_link(net.bridge)
            if link is not None and link.alias == network_mark(name):
                nl.delete_link(link.index, f'cannot delete bridge "{net.bridge}"')
        dockeruser.forget_network(net.bridge)
        state.remove("networks", name)
        state.remove("leases", name)


def _leases(name: str) -> dict[str, str]:
    rec = state.read("leases", name)
    return {str(k): str(v) for k, v in (rec or {}).items()}


def lease(name: str, owner: str, wanted: IP | None = None, family: int | None = None) -> IP:
    """Lease an address of network ``name`` to ``owner``: the wanted one, or the lowest free
    of the family asked for (default: the network's primary family)."""
    net = get(name)
    if net is None:
        raise NetplumbError(f"network {name} not found")
    version = wanted.version if wanted is not None else family or net.gateway.version
    gw = next((g for g in net.gateways if g.version == version), None)
    if gw is None:
        raise Conflict(f"network {name} has no IPv{version} subnet")
    with _Lock("leases", f"{name}.lock"):
        leases = _leases(name)
        if wanted is not None:
            if not gw.contains(wanted) or wanted == gw.ip:
                raise Conflict(
                    f"address {wanted} is not available in network {name} ({gw.ip}/{gw.prefixlen})"
                )
            holder = leases.get(str(wanted))
            if holder is not None and holder != owner:
                raise Conflict(
                    f"address {wanted} is already in use in network {name} (by {holder})"
                )
            ip = wanted
        else:
            same = {a for a in leases if (":" in a) == (version == 6)}
            ip = allocate(gw, same)
        leases[str(ip)] = owner
        state.write(dict(leases), "leases", name)
    return ip


def release(name: str, owner: str) -> None:
    """Release every address ``owner`` holds in network ``name``."""
    with _Lock("leases", f"{name}.lock"):
        leases = _leases(name)
        kept = {ip: o for ip, o in leases.items() if o != owner}
        if kept != leases:
            state.write(dict(kept), "leases", name)


def release_address(name: str, ip: str, owner: str) -> None:
    """Release one address, if ``owner`` holds it."""
    with _Lock("leases", f"{name}.lock"):
        leases = _leases(name)
        if leases.get(ip) == owner:
            del leases[ip]
            state.write(dict(leases), "leases", name)


def by_bridge(bridge: str) -> Network | None:
    for name in names():
        net = get(name)
        if net is not None and net.bridge == bridge:
            return net
    return None


def leases_of(owner: str) -> list[tuple[str, str]]:
    """(network, address) pairs ``owner`` holds."""
    out = []
    for name in names():
        for ip, o in _leases(name).items():
            if o == owner:
                out.append((name, ip))
    return out


def describe(net: Network) -> Record:
    return {**net.to_record(), "subnet": net.subnet, "leases": _leases(net.name)}
