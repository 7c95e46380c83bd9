"""The fine-grained actions of each step of an ``up`` or ``down`` plan (pure).

A guest's interfaces are planned by the one attach planner (``plan_attach``), against the
bridge as it is or as the plan makes it. Addresses not chosen in the file are the lowest
free ones as the leases stand when planning (``allocate``, the rule the leases follow), after
the plan's removals have freed theirs: what ``up`` will lease unless another command leases
meanwhile. A host's veth is named after its holder's PID, unknown before it starts: ``PID``.
"""

from __future__ import annotations

from netplumb.errors import NetplumbError
from netplumb.model.addresses import AddressSpec
from netplumb.model.attach import AttachRequest
from netplumb.model.ip import IP, Interface
from netplumb.model.links import hosts_line, link_env
from netplumb.model.network import (
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    DEFAULT_SUBNET,
    DEFAULT_SUBNET6,
    Network,
    allocate,
    make_network,
)
from netplumb.plan.actions import Action
from netplumb.plan.attach import HostLink, Observed, plan_attach
from netplumb.plan.networks import DeleteBridge, NetworkRules, create_steps
from netplumb.plan.observed import Guest
from netplumb.plan.observed import Observed as ProjectObserved
from netplumb.plan.ports import PublishPort
from netplumb.plan.steps import (
    CreateContainer,
    DetachInterface,
    HostsLine,
    LeaseAddress,
    LinkVariable,
    Refused,
    ReleaseAddress,
    RunCommand,
    StartHost,
    StopGuest,
    UnpublishPorts,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.topofile.model import Replica, Topology


def network_steps(net: Network) -> tuple[Action, ...]:
    """What creating a network does (``plan/networks.py``, nothing of it there yet)."""
    return create_steps(net)


def remove_network_steps(net: Network | None, name: str) -> tuple[Action, ...]:
    if net is None:
        return ()
    return (DeleteBridge(net.bridge), NetworkRules(name, (), net.bridge, add=False))


def remove_steps(g: Guest, one_by_one: bool = False) -> tuple[Action, ...]:
    """What removing a guest undoes, from its records. A host's interfaces go with its netns
    when its holder stops (``down``), unless they are deleted ``one_by_one`` (``rm``)."""
    steps: list[Action] = []
    if g.ports:
        steps.append(UnpublishPorts(g.owner or g.name, g.ports))
    if g.runtime != "host" or one_by_one:
        steps += [DetachInterface(ifname, host) for ifname, host in reversed(g.interfaces)]
    steps += [ReleaseAddress(net, ip) for net, ip in g.addresses]
    steps.append(StopGuest(g.name, g.runtime))
    return tuple(steps)


class Leases:
    """The leases as the plan goes: freed by its removals, taken by its starts."""

    def __init__(self, topo: Topology, obs: ProjectObserved) -> None:
        self.networks: dict[str, Network] = dict(obs.networks)
        for net in topo.networks:
            self.networks.setdefault(net.name, net)
        self.default_made = DEFAULT_NETWORK in self.networks
        default = obs.default_network or make_network(
            DEFAULT_NETWORK, DEFAULT_BRIDGE, DEFAULT_SUBNET, subnet6=DEFAULT_SUBNET6
        )
        self.networks.setdefault(DEFAULT_NETWORK, default)
        self.used = {name: set(ips) for name, ips in obs.leases.items()}
        for name, net in self.networks.items():  # never leased: the allocator skips them too
            self.used.setdefault(name, set()).update(str(ip) for ip in net.nat_sources)
        self.first_ip: dict[str, IP] = {}  # replica -> the address a link to it gives
        self.obs = obs
        # the lowest address not known to be taken, per network and family: the plan's starts
        # lease in order, so each lease costs O(1), not a scan of the network's leases
        self.cursor: dict[tuple[str, int], int] = {}

    def free(self, g: Guest) -> None:
        for net, ip in g.addresses:
            self.used.get(net, set()).discard(ip)
            addr = IP.parse(ip)
            key = (net, addr.version)
            if key in self.cursor:
                self.cursor[key] = min(self.cursor[key], addr.as_int)

    def take(self, net: Network, gw: Interface, wanted: IP | None) -> LeaseAddress:
        used = self.used.setdefault(net.name, set())
        if wanted is not None:
            ip = wanted
        else:
            key = (net.name, gw.version)
            ip = allocate(gw, used) if key not in self.cursor else self._next(gw, key, used)
            self.cursor[key] = ip.as_int + 1
        used.add(str(ip))
        return LeaseAddress(net.name, ip, wanted is not None)

    def _next(self, gw: Interface, key: tuple[str, int], used: set[str]) -> IP:
        """``allocate``'s answer (the lowest free), from the cursor on: below it, all is taken."""
        width = 4 if gw.version == 4 else 16
        last = gw.broadcast_int - (1 if gw.version == 4 else 0)
        candidate = max(self.cursor[key], gw.network_int + 1)
        while candidate <= last:
            ip = IP(candidate.to_bytes(width, "big"))
            if candidate != gw.ip.as_int and str(ip) not in used:
                return ip
            candidate += 1
        return allocate(gw, used)  # raises: no free address left

    def address_of(self, name: str) -> str:
        if name in self.first_ip:
            return str(self.first_ip[name])
        g = self.obs.guests.get(name)
        return g.addresses[0][1] if g is not None and g.addresses else ""


def start_steps(r: Replica, topo: Topology, leases: Leases) -> tuple[Action, ...]:
    """Starting one guest: its process, its networks' interfaces, extra interfaces, ports,
    link variables and hosts lines, then (a host) its command. What applying would refuse
    ends the list, as the error it would give (``Refused``): a plan to print never raises."""
    steps: list[Action] = []
    try:
        _start_steps(r, topo, leases, steps)
    except NetplumbError as exc:
        steps.append(Refused(str(exc)))
    return tuple(steps)


def _start_steps(r: Replica, topo: Topology, leases: Leases, steps: list[Action]) -> None:
    obs = leases.obs
    docker = r.runtime == "docker"
    if docker:
        steps.append(CreateContainer(r.name, r.image or ""))
    else:
        steps.append(StartHost(r.name))
    owner = f"docker:ID-OF-{r.name}" if docker else f"host:{r.name}"
    short = "ID" if docker else "PID"
    mine: dict[int, IP] = {}
    for i, att in enumerate(r.networks):
        net = leases.networks.get(att.network)
        if net is None:
            raise NetplumbError(f"network {att.network} not found")
        if att.network == DEFAULT_NETWORK and not leases.default_made:
            leases.default_made = True  # made on first use, like docker0
            steps += network_steps(net)
        specs = []
        for gw in net.gateways:
            lease = leases.take(net, gw, att.ipv4 if gw.version == 4 else att.ipv6)
            steps.append(lease)
            mine.setdefault(lease.ip.version, lease.ip)
            leases.first_ip.setdefault(r.name, lease.ip)
            specs.append(AddressSpec(Interface(lease.ip, gw.prefixlen), gw.ip if i == 0 else None))
        req = AttachRequest(r.name, net.bridge, att.ifname, addresses=tuple(specs))
        seen = Observed(HostLink(net.bridge, True, net.mtu))
        steps += plan_attach(
            req, seen, owner=owner, guest_short=short, guest_name=r.name, scope=obs.scope
        )
    for iface in r.interfaces:
        req = iface.attach_request(r.name)
        host = obs.host_links.get(iface.host_if)
        bridge = next((n for n in leases.networks.values() if n.bridge == iface.host_if), None)
        if host is None and bridge is not None:
            host = HostLink(bridge.bridge, True, bridge.mtu)
        seen = Observed(host, dhcp_client=obs.dhcp_client)
        steps += plan_attach(
            req, seen, owner=owner, guest_short=short, guest_name=r.name, scope=obs.scope
        )
    for m in r.ports:
        fams = [4, 6] if m.host_ip is None else [m.host_ip.version]
        ips = tuple(mine[f] for f in fams if f in mine)
        steps.append(PublishPort(m, ips))
    if docker:  # given to ``docker create``: before the container starts
        steps[:0] = _link_steps(r, topo, leases, docker)
    else:
        steps += _link_steps(r, topo, leases, docker)
    if not docker:
        steps.append(RunCommand(r.command))


def _link_steps(r: Replica, topo: Topology, leases: Leases, docker: bool) -> list[Action]:
    """The link variables and hosts lines of ``r``'s links (Docker: its ``extra_hosts``)."""
    steps: list[Action] = []
    for link in r.links:
        target = topo.replica(link.target)  # the file's links name its replicas
        ip = leases.address_of(link.target)
        env = link_env(link.alias, r.name, ip, list(target.expose), list(target.environment))
        steps += [LinkVariable(v) for v in env]
        if not docker:
            steps.append(HostsLine(hosts_line(ip, link.alias, target.hostname, target.name)))
        else:  # Docker's extra_hosts: one line per name
            names = dict.fromkeys((link.alias, link.target))
            steps += [HostsLine(f"{ip}\t{n}") for n in names]
    return steps
