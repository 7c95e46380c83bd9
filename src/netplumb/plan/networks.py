"""Creating and removing a network: the plan, from the records and what the kernel shows (pure).

``network create``, ``network rm``, their ``--dry-run`` and every use case that makes a
network (``up``, CNI, the default network) plan here, so a refusal is decided once:
``plan_create`` refuses a definition that differs from the recorded one, a clash with another
network (its bridge, or overlapping subnets), a subnet that overlaps an address of the
machine, and a bridge that is not netplumb's; ``plan_remove`` refuses an unknown network and
one with active endpoints. ``ops/networks.py`` executes the actions with ``ops/apply.py``.

The record comes first (``RecordNetwork``): killed anywhere after it (a ``kill -9`` of ``up``),
``rm`` and ``down`` find the network and remove whatever of it was made.

Value classes, not dataclasses: the CNI plugin and the default network of ``run`` plan here,
and importing ``dataclasses`` costs ~15 ms.
"""

from __future__ import annotations

from netplumb.errors import Conflict, NetplumbError
from netplumb.model.ip import Interface
from netplumb.model.mac import bridge_mac
from netplumb.model.names import network_mark
from netplumb.model.value import Value
from netplumb.plan.actions import Action, CreateBridge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from netplumb.model.network import Network


class RecordNetwork(Action):
    __slots__ = ("network",)
    network: Network

    def __init__(self, network: Network) -> None:
        self.network = network
        self._freeze()

    def __str__(self) -> str:
        n = self.network
        subnets = " ".join(s for s in (n.subnet, n.subnet6) if s)
        internal = ", internal" if n.internal else ""
        return f"record network {n.name} ({subnets} on {n.bridge}{internal})"


class ForgetNetwork(Action):
    __slots__ = ("name",)
    name: str

    def __init__(self, name: str) -> None:
        self.name = name
        self._freeze()

    def __str__(self) -> str:
        return f"forget network {self.name} (its record and address leases)"


class BridgeAddress(Action):
    __slots__ = ("bridge", "interface")
    bridge: str
    interface: Interface

    def __init__(self, bridge: str, interface: Interface) -> None:
        self.bridge = bridge
        self.interface = interface
        self._freeze()

    def __str__(self) -> str:
        return f"ip addr add {self.interface} dev {self.bridge}"


class BridgeMac(Action):
    """A network's bridge made before its address was fixed: it gets it (``bridge_mac``)."""

    __slots__ = ("bridge", "mac")
    bridge: str
    mac: bytes

    def __init__(self, bridge: str, mac: bytes) -> None:
        self.bridge = bridge
        self.mac = mac
        self._freeze()

    def __str__(self) -> str:
        return f"ip link set {self.bridge} address {self.mac.hex(':')}"


class BridgeUp(Action):
    __slots__ = ("bridge",)
    bridge: str

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self._freeze()

    def __str__(self) -> str:
        return f"ip link set {self.bridge} up"


class Forwarding(Action):
    """The sysctls a network's bridge needs: forwarding, and route_localnet for IPv4."""

    __slots__ = ("bridge", "version")
    bridge: str
    version: int

    def __init__(self, bridge: str, version: int) -> None:
        self.bridge = bridge
        self.version = version
        self._freeze()

    def __str__(self) -> str:
        if self.version == 4:
            return f"sysctl net.ipv4.conf.{self.bridge}.route_localnet=1 net.ipv4.ip_forward=1"
        return "sysctl net.ipv6.conf.all.forwarding=1"


class NetworkRules(Action):
    __slots__ = ("add", "bridge", "internal", "network", "subnets")
    network: str
    subnets: tuple[str, ...]
    bridge: str
    add: bool
    internal: bool

    def __init__(
        self,
        network: str,
        subnets: tuple[str, ...],
        bridge: str,
        add: bool = True,
        internal: bool = False,
    ) -> None:
        self.network = network
        self.subnets = subnets
        self.bridge = bridge
        self.add = add
        self.internal = internal
        self._freeze()

    def __str__(self) -> str:
        if not self.add:
            return f"nft: drop network {self.network}'s rules"
        if self.internal:
            return (
                f"nft: network {self.network}'s rules (internal: nothing routed between "
                f"{self.bridge} and another interface, no masquerade)"
            )
        return (
            f"nft: network {self.network}'s rules (masquerade {' '.join(self.subnets)} "
            f"leaving by another interface than {self.bridge})"
        )


class DeleteBridge(Action):
    __slots__ = ("bridge",)
    bridge: str

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self._freeze()

    def __str__(self) -> str:
        return f"ip link del {self.bridge}"


class BridgeSeen(Value):
    """The network's bridge as the kernel shows it: kind, mark, up, its addresses."""

    __slots__ = ("addresses", "alias", "kind", "mac", "up")
    kind: str | None
    alias: str | None
    up: bool
    addresses: frozenset[Interface]
    mac: bytes | None  # None: not looked at

    def __init__(
        self,
        kind: str | None,
        alias: str | None,
        up: bool,
        addresses: frozenset[Interface],
        mac: bytes | None = None,
    ) -> None:
        self.kind = kind
        self.alias = alias
        self.up = up
        self.addresses = addresses
        self.mac = mac
        self._freeze()


def kernel_steps(net: Network, bridge: BridgeSeen | None = None) -> list[Action]:
    """What the network's kernel side lacks: the bridge, its gateways, up, the sysctls.
    Refuses a device of that name that is not a bridge, or a bridge that is not netplumb's."""
    steps: list[Action] = []
    if bridge is None:
        steps.append(CreateBridge(net.bridge, net.mtu, bridge_mac(net.bridge)))
    elif bridge.kind != "bridge":
        raise Conflict(
            f'cannot use "{net.bridge}" for network {net.name}: '
            f"it is a {bridge.kind or 'device'}, not a bridge"
        )
    elif bridge.alias != network_mark(net.name):
        raise Conflict(
            f'cannot use bridge "{net.bridge}" for network {net.name}: '
            f"it is not netplumb's ({bridge.alias or 'no mark'})"
        )
    have = bridge.addresses if bridge is not None else frozenset()
    if bridge is not None and bridge.mac is not None and bridge.mac != bridge_mac(net.bridge):
        steps.append(BridgeMac(net.bridge, bridge_mac(net.bridge)))
    steps += [BridgeAddress(net.bridge, gw) for gw in net.gateways if gw not in have]
    # the NAT sources, each alone (/32): the gateway's prefix route already covers the subnet
    nat = [Interface(ip, 32) for ip in net.nat_sources]
    steps += [BridgeAddress(net.bridge, a) for a in nat if a not in have]
    if bridge is not None and not bridge.up:
        steps.append(BridgeUp(net.bridge))
    # written only when they differ, so always in the plan (the kernel's value is not observed)
    steps += [Forwarding(net.bridge, gw.version) for gw in net.gateways]
    return steps


def create_steps(net: Network) -> tuple[Action, ...]:
    """A new network's kernel side and rules, nothing of it there yet (``up``'s plan)."""
    subnets = tuple(s for s in (net.subnet, net.subnet6) if s)
    return (*kernel_steps(net), NetworkRules(net.name, subnets, net.bridge, internal=net.internal))


def plan_create(
    net: Network,
    existing: Network | None,
    others: Iterable[Network],
    bridge: BridgeSeen | None,
    machine: Sequence[tuple[str, Interface]],
) -> list[Action]:
    """``network create``: ``existing``, the record of that name; ``others``, every other
    network's; ``machine``, the addresses of this namespace (interface name, address)."""
    if existing is not None and not existing.same_definition(net):
        raise Conflict(
            f"network {net.name} exists with another definition "
            f"({existing.subnet} on {existing.bridge})"
        )
    for o in others:
        if o.name != net.name and (o.bridge == net.bridge or _overlap(o, net)):
            raise Conflict(
                f"network {net.name} clashes with network {o.name} ({o.subnet} on {o.bridge})"
            )
    if existing is not None:  # made before: repair its kernel side; its rules came then
        return kernel_steps(existing, bridge)
    _check_free(net, machine)
    kernel = kernel_steps(net, bridge)
    subnets = tuple(s for s in (net.subnet, net.subnet6) if s)
    rules = NetworkRules(net.name, subnets, net.bridge, internal=net.internal)
    return [RecordNetwork(net), *kernel, rules]


def plan_remove(
    name: str, net: Network | None, endpoints: Iterable[str], bridge: BridgeSeen | None
) -> list[Action]:
    """``network rm``: its bridge (only if it carries the network's mark), its record and
    leases, then the rules without it. ``endpoints``: the owners of its address leases."""
    if net is None:
        raise NetplumbError(f"network {name} not found")
    held = sorted(set(endpoints))
    if held:
        raise Conflict(f"network {name} has active endpoints: {', '.join(held)}")
    steps: list[Action] = []
    if bridge is not None and bridge.alias == network_mark(name):
        steps.append(DeleteBridge(net.bridge))
    return [*steps, ForgetNetwork(name), NetworkRules(name, (), net.bridge, add=False)]


def _check_free(net: Network, machine: Sequence[tuple[str, Interface]]) -> None:
    """Refuse a subnet that overlaps an address this machine already has: its LAN would
    become unreachable through the new bridge's route."""
    for mine in net.gateways:
        for ifname, other in machine:
            if other.version != mine.version or ifname == net.bridge or other.ip.is_loopback:
                continue
            lo = max(other.network_int, mine.network_int)
            hi = min(other.broadcast_int, mine.broadcast_int)
            if lo <= hi and not other.ip.packed.startswith(b"\xfe\x80"):
                raise Conflict(
                    f"cannot create network {net.name}: {mine.ip}/{mine.prefixlen} overlaps "
                    f"{other} on {ifname} (choose another subnet)"
                )


def _overlap(a: Network, b: Network) -> bool:
    for ga in a.gateways:
        for gb in b.gateways:
            if ga.version == gb.version and (
                ga.network_int <= gb.broadcast_int and gb.network_int <= ga.broadcast_int
            ):
                return True
    return False
