"""Networks (a bridge with a subnet and gateway) and their address management.

Addresses are leased from a per-network folder in the state directory (one entry per address)
under an exclusive ``flock``: two commands, even run in parallel, never hand out one address
twice. A network's bridge carries the mark ``netplumb:network:<name>`` and the gateway
address; netplumb turns on ``route_localnet`` on that bridge only (never on ``all``:
Kubernetes' CVE-2020-8558), so that ports published on 127.0.0.1 can be forwarded to its
guests, and IP forwarding in the namespace, as Docker does for docker0.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import KernelError, NetplumbError
from netplumb.kernel.netlink import Netlink
from netplumb.lightos import getenv
from netplumb.model.ip import IP, Interface
from netplumb.model.names import network_mark
from netplumb.model.network import (
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    DEFAULT_SUBNET,
    DEFAULT_SUBNET6,
    Network,
    make_network,
)
from netplumb.ops.apply import apply
from netplumb.state import addresses
from netplumb.state.lock import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.plan.actions import Action
    from netplumb.plan.networks import BridgeSeen
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
    """Make the bridge, its gateway address, route_localnet and forwarding exist (idempotent):
    the kernel part of a network's plan (``plan/networks.py``), applied."""
    from netplumb.plan.networks import kernel_steps

    # under the lock ``create`` holds: a network being created (its record written, its
    # bridge not yet) is repaired once it is made, never made twice (EEXIST)
    with Lock("networks.lock"):
        current = get(net.name) or net
        adopted = _adopt_nat_sources(current)
        with Netlink() as nl:
            steps = kernel_steps(adopted, observe_bridge(nl, net.bridge))
            apply(steps, Executor(nl, adopted))
    if adopted is not current:  # its bridge has the addresses now: translate to them
        _ruleset_changed()


def _adopt_nat_sources(net: Network) -> Network:
    """A network recorded before NAT sources existed, with them (``model.network``), its
    record written: under the lock of its leases, so no guest takes one meanwhile. Unless a
    guest already holds one of those addresses: that network masquerades to its gateway as
    before."""
    from netplumb.state import leases as alloc

    new = net.with_nat_sources()
    if new == net:
        return net
    with alloc.lock(net.name):
        held = leases(net.name)
        if any(str(ip) in held for ip in new.nat_sources):
            return net
        state.write(new.to_record(), "networks", net.name)
    return new


def observe_bridge(nl: Netlink, bridge: str) -> BridgeSeen | None:
    from netplumb.plan.networks import BridgeSeen

    link = nl.get_link(bridge)
    if link is None:
        return None
    have = frozenset(
        Interface(IP(a.address), a.prefixlen)
        for a in nl.addresses()
        if a.index == link.index and len(a.address) in (4, 16)
    )
    return BridgeSeen(link.kind, link.alias, link.up, have, link.mac)


def plan_create(net: Network, nl: Netlink) -> list[Action]:
    """``network create``'s plan, from the records and the kernel (reads only)."""
    from netplumb.plan import networks as plan

    existing = get(net.name)
    others = [o for o in (get(n) for n in names()) if o is not None]
    machine: list[tuple[str, Interface]] = []
    if existing is None:  # the overlap check needs this namespace's addresses
        ifnames = {ln.index: ln.name for ln in nl.links()}
        machine = [
            (ifnames.get(a.index, str(a.index)), Interface(IP(a.address), a.prefixlen))
            for a in nl.addresses()
            if len(a.address) in (4, 16)
        ]
    return plan.plan_create(net, existing, others, observe_bridge(nl, net.bridge), machine)


def plan_remove(name: str, nl: Netlink) -> list[Action]:
    """``network rm``'s plan, from the records and the kernel (reads only)."""
    from netplumb.plan import networks as plan

    net = get(name)
    seen = observe_bridge(nl, net.bridge) if net is not None else None
    return plan.plan_remove(name, net, leases(name).values(), seen)


def create(net: Network) -> Network:
    with Lock("networks.lock"), Netlink() as nl:
        apply(plan_create(net, nl), Executor(nl, net))
    return net


def remove(name: str) -> None:
    with Lock("networks.lock"), Netlink() as nl:
        steps = plan_remove(name, nl)
        net = get(name)
        assert net is not None  # the plan refuses an unknown network
        apply(steps, Executor(nl, net))


def _ruleset_changed() -> None:
    """A network came or went: its guard, masquerade (and isolation) rules are part of the
    whole ruleset, which is written again from the records (deferred to the end of a
    ``ports.batch()``). Here, so that every way of making or removing a network does it."""
    from netplumb.ops import portrules

    portrules.sync()


class Executor:
    """Carries out a network plan's actions in ``nl``'s namespace; each returns its undo
    (None: nothing to undo). A new bridge's undo deletes it, and with it its addresses."""

    def __init__(self, nl: Netlink, net: Network) -> None:
        self.nl = nl
        self.net = net

    def __call__(self, action: Action) -> Callable[[], None] | None:
        from netplumb.kernel import dockeruser
        from netplumb.plan import networks as plan
        from netplumb.plan.actions import CreateBridge

        net, nl = self.net, self.nl
        if isinstance(action, plan.RecordNetwork):
            state.write(net.to_record(), "networks", net.name)
            return lambda: state.remove("networks", net.name)
        if isinstance(action, CreateBridge):
            return self._create_bridge(action.mac)
        if isinstance(action, plan.BridgeAddress):
            gw, index = action.interface, self._index()
            fam, packed, plen = gw.ip.family, gw.ip.packed, gw.prefixlen
            nl.add_address(index, fam, packed, plen, what=f"cannot add {gw} to {net.bridge}")
            what = f"cannot delete {gw} from {net.bridge}"
            return lambda: nl.delete_address(index, fam, packed, plen, what=what)
        if isinstance(action, plan.BridgeMac):  # kept when undone: any fixed one will do
            nl.set_link(self._index(), mac=action.mac, what=f"cannot set {net.bridge}'s address")
            return None
        if isinstance(action, plan.BridgeUp):
            nl.set_link(self._index(), up=True, what=f"cannot set {net.bridge} up")
            return None
        if isinstance(action, plan.Forwarding):  # left on when undone, as Docker leaves it
            if action.version == 4:
                _write_sysctl(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet", "1")
                _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            else:
                _write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
            return None
        if isinstance(action, plan.NetworkRules):
            _ruleset_changed()
            if not action.add:  # and DOCKER-USER's, even when its bridge had gone already
                dockeruser.sync(nl)
                return None

            def undo() -> None:  # the rules without the network: its record goes first
                state.remove("networks", net.name)
                _ruleset_changed()

            return undo
        if isinstance(action, plan.DeleteBridge):
            link = nl.get_link(net.bridge)
            if link is not None and link.alias == network_mark(net.name):
                nl.delete_link(link.index, f'cannot delete bridge "{net.bridge}"')
            return None
        if isinstance(action, plan.ForgetNetwork):
            state.remove("networks", net.name)
            addresses.drop(net.name)
            return None
        raise NetplumbError(f"network {net.name}: no executor for {type(action).__name__}")

    def _index(self) -> int:
        link = self.nl.get_link(self.net.bridge)
        if link is None:
            raise NetplumbError(f'bridge "{self.net.bridge}" is gone')
        return link.index

    def _create_bridge(self, mac: bytes | None) -> Callable[[], None]:
        from netplumb.kernel import dockeruser

        net, nl = self.net, self.nl
        nl.create_link(
            net.bridge,
            "bridge",
            up=True,
            mtu=net.mtu,
            mac=mac,
            what=f'cannot add bridge "{net.bridge}"',
        )
        index = self._index()
        what = f'cannot delete bridge "{net.bridge}"'
        try:
            nl.set_link(
                index, alias=network_mark(net.name), what=f'cannot mark bridge "{net.bridge}"'
            )
            dockeruser.sync(nl)  # its DOCKER-USER rules (an existing bridge got them then)
        except BaseException:
            nl.delete_link(index, what)
            raise

        def undo() -> None:
            nl.delete_link(index, what)
            dockeruser.sync(nl)

        return undo


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
    subnet = getenv("NETPLUMB_DEFAULT_SUBNET", DEFAULT_SUBNET)
    subnet6 = getenv("NETPLUMB_DEFAULT_SUBNET6", DEFAULT_SUBNET6)
    v6 = None if subnet6 in ("", "none") else subnet6
    return make_network(DEFAULT_NETWORK, DEFAULT_BRIDGE, subnet, subnet6=v6)


def by_bridge(bridge: str) -> Network | None:
    for name in names():
        net = get(name)
        if net is not None and net.bridge == bridge:
            return net
    return None


def describe(net: Network) -> Record:
    return {**net.to_record(), "subnet": net.subnet, "leases": leases(net.name)}
