"""Raw topology -> resolved ``Topology``: bind names, fill defaults, check invariants.

Every error is a ``TopologyError`` carrying the path of the value at fault in the long form
of the document (``services.webserver.ports[1]``); the loader turns the path into a line.
"""

from __future__ import annotations

from netplumb.model import restart
from netplumb.model.addresses import AddressSpec
from netplumb.model.ip import IP, Interface
from netplumb.model.links import Link, parse_link
from netplumb.model.mac import Mac
from netplumb.model.network import (
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    DEFAULT_SUBNET,
    DEFAULT_SUBNET6,
    Network,
    make_network,
)
from netplumb.model.ports import PortMapping, parse_expose, parse_port_spec
from netplumb.topofile.model import (
    Attachment,
    Condition,
    Dependency,
    ExtraInterface,
    Path,
    Replica,
    Topology,
    TopologyError,
)
from netplumb.topofile.networks import resolve_networks, subnet_text
from netplumb.topofile.order import dependency_order
from netplumb.topofile.raw import (
    RawInterface,
    RawReplica,
    RawService,
    RawServiceNetwork,
    RawTopology,
)
from netplumb.topofile.services import Names, check_hostname, check_name, name_services
from netplumb.topofile.values import parse_addresses, parse_condition


def default_network() -> Network:
    """The network services join when they name none (as ``netplumb run`` does)."""
    return make_network(DEFAULT_NETWORK, DEFAULT_BRIDGE, DEFAULT_SUBNET, subnet6=DEFAULT_SUBNET6)


def resolve(raw: RawTopology, project: str = "default", default: Network | None = None) -> Topology:
    """The resolved topology; ``project`` names it when the file does not."""
    name = raw.name if raw.name is not None else project
    check_name(name, ("name",), "project name")
    default = default or default_network()
    networks = resolve_networks(raw, default)
    known = {n.name: n for n in (default, *networks)}
    names = name_services(raw)
    r = _Resolver(known, names, raw.link_env)
    replicas = tuple(
        replica for sname, service in raw.services.items() for replica in r.service(sname, service)
    )
    r.check_links(replicas)
    return Topology(name, networks, replicas, dependency_order(replicas, r.edge_paths))


def _host_text(ip: IP | None) -> str:
    if ip is None:
        return "0.0.0.0"
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _clash(a: IP | None, b: IP | None) -> bool:
    """Whether two host addresses of published ports share a socket address (Docker's rule)."""
    if a is None or b is None:
        return True
    return a.version == b.version and (a.is_unspecified or b.is_unspecified or a == b)


class _Resolver:
    """The state that spans services: addresses, MACs and host ports handed out so far."""

    def __init__(self, networks: dict[str, Network], names: Names, link_env: bool = True) -> None:
        self.networks = networks
        self.names = names
        self.link_env = link_env  # the file's; a service's own link_env wins
        self.addresses: dict[IP, str] = {}
        self.macs: dict[tuple[str, Mac], str] = {}
        self.ports: dict[tuple[str, int], list[tuple[IP | None, str]]] = {}
        self.link_paths: dict[tuple[str, int], Path] = {}
        self.edge_paths: dict[tuple[str, str], Path] = {}

    def service(self, sname: str, rs: RawService) -> list[Replica]:
        here: Path = ("services", sname)
        if rs.runtime == "host" and rs.image is not None:
            raise TopologyError((*here, "image"), "an image needs runtime: docker")
        if rs.runtime == "host" and rs.command is None:
            raise TopologyError(here, "a command is needed (or an image with runtime: docker)")
        if rs.runtime == "docker" and not rs.image:
            raise TopologyError(here, "runtime docker needs an image")
        replica_names = self.names.replicas[sname]
        for key in rs.per_replica:
            if key not in replica_names:
                shown = ", ".join(replica_names[:3]) + (", ..." if len(replica_names) > 3 else "")
                raise TopologyError((*here, "per_replica", key), f"no such replica ({shown})")
        ports = [
            (self._ports(rs.replicas, (*here, "ports", j), spec), (*here, "ports", j))
            for j, spec in enumerate(rs.ports)
        ]
        expose: list[tuple[int, str]] = []
        for spec in rs.expose:
            expose += [p for p in parse_expose(spec) if p not in expose]
        out = []
        for i, name in enumerate(replica_names):
            out.append(self._replica(sname, rs, i, name, ports, tuple(expose)))
        return out

    @staticmethod
    def _ports(n: int, here: Path, spec: str) -> list[list[PortMapping]]:
        """The mappings of one ``ports`` entry for each of ``n`` replicas: a host port range
        for one container port spreads over them (``8080-8082:8080``: one port each). A single
        replica keeps Docker's meaning, "any free port of the range"."""
        per: list[list[PortMapping]] = [[] for _ in range(n)]
        for m in parse_port_spec(spec):
            if m.host_port_end != m.host_port and n > 1:
                count = m.host_port_end - m.host_port + 1
                if count != n:
                    raise TopologyError(
                        here,
                        f"the host port range {m.host_port}-{m.host_port_end} has {count} ports "
                        f"for {n} replicas: give one port per replica",
                    )
                for i in range(n):
                    port = m.host_port + i
                    per[i].append(PortMapping(m.host_ip, port, m.container_port, m.proto))
            elif m.host_port and n > 1:
                raise TopologyError(
                    here,
                    f"host port {m.host_port} would be published by each of the {n} replicas: "
                    f"give a range of {n} host ports",
                )
            else:
                for i in range(n):
                    per[i].append(m)
        return per

    def _replica(
        self,
        sname: str,
        rs: RawService,
        i: int,
        name: str,
        ports: list[tuple[list[list[PortMapping]], Path]],
        expose: tuple[tuple[int, str], ...],
    ) -> Replica:
        here: Path = ("services", sname)
        over = rs.per_replica.get(name)
        there: Path = (*here, "per_replica", name)
        n = str(i + 1)
        if over is not None and over.hostname is not None:
            hostname = check_hostname(over.hostname.replace("{n}", n), (*there, "hostname"))
        elif rs.hostname is not None:
            hostname = check_hostname(rs.hostname.replace("{n}", n), (*here, "hostname"))
        else:
            hostname = name
        env = dict(rs.environment)
        mine = [(m, where) for per, where in ports for m in per[i]]
        if over is not None:
            env.update(over.environment)
            for j, spec in enumerate(over.ports):
                where = (*there, "ports", j)
                mine += [(m, where) for m in self._ports(1, where, spec)[0]]
        links = self._links(name, rs, here)
        attachments = self._attachments(name, rs, here, over)
        if not attachments and mine:
            raise TopologyError(mine[0][1], "cannot publish ports of a service without a network")
        if not attachments and rs.aliases:
            raise TopologyError(
                (*here, "aliases"), "cannot give aliases to a service without a network"
            )
        self._publish(name, mine)
        interfaces = self._interfaces(name, rs, here, over, attachments)
        deps = []
        for target, rd in rs.depends_on.items():
            at: Path = (*here, "depends_on", target)
            targets = self.names.members.get(target)
            if targets is None:
                raise TopologyError(at, f"no such service: {target}")
            kind, port, command = parse_condition(rd.condition)
            deps.append(Dependency(target, targets, Condition(kind, port, command, rd.timeout)))
            for t in targets:
                self.edge_paths.setdefault((name, t), at)
        return Replica(
            name=name,
            service=sname,
            index=i + 1,
            runtime=rs.runtime,
            command=tuple(rs.command or ()),
            image=rs.image,
            restart=restart.parse(rs.restart or ""),
            hostname=hostname,
            environment=tuple(f"{k}={v}" for k, v in env.items()),
            expose=expose,
            links=links,
            ports=tuple(m for m, _ in mine),
            networks=attachments,
            interfaces=interfaces,
            depends_on=tuple(deps),
            aliases=tuple(dict.fromkeys(rs.aliases)),
            link_env=self.link_env if rs.link_env is None else rs.link_env,
        )

    def _links(self, name: str, rs: RawService, here: Path) -> tuple[Link, ...]:
        out: list[Link] = []
        for j, spec in enumerate(rs.links):
            at: Path = (*here, "links", j)
            target, alias = parse_link(spec)
            members = self.names.members.get(target)
            if members is None:
                raise TopologyError(at, f"no such service: {target}")
            if len(members) > 1:
                shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
                raise TopologyError(
                    at, f"{target} has {len(members)} replicas: link to one of them ({shown})"
                )
            if any(link.alias == alias for link in out):
                raise TopologyError(at, f"alias {alias} is given twice")
            out.append(Link(members[0], alias))
            self.link_paths[(name, len(out) - 1)] = at
            self.edge_paths.setdefault((name, members[0]), at)
        return tuple(out)

    def _publish(self, name: str, mine: list[tuple[PortMapping, Path]]) -> None:
        for m, at in mine:
            if not m.host_port:
                continue
            for port in range(m.host_port, m.host_port_end + 1):
                key = (m.proto, port)
                for ip, owner in self.ports.get(key, []):
                    if _clash(ip, m.host_ip):
                        raise TopologyError(
                            at,
                            f"Bind for {_host_text(m.host_ip)}:{port} failed: "
                            f"port is already allocated (by {owner})",
                        )
                self.ports.setdefault(key, []).append((m.host_ip, name))

    def _attachments(
        self, name: str, rs: RawService, here: Path, over: RawReplica | None
    ) -> tuple[Attachment, ...]:
        base = rs.networks if rs.networks is not None else {DEFAULT_NETWORK: RawServiceNetwork()}
        wanted = {k: (v, (*here, "networks", k)) for k, v in base.items()}
        extra = over.networks if over is not None else {}
        wanted |= {k: (v, (*here, "per_replica", name, "networks", k)) for k, v in extra.items()}
        out = []
        for k, (net_name, (rsn, at)) in enumerate(wanted.items()):
            net = self.networks.get(net_name)
            if net is None:
                raise TopologyError(at, f"no such network: {net_name}")
            v4 = self._static(name, net, rsn.ipv4_address, (*at, "ipv4_address"), rs)
            v6 = self._static(name, net, rsn.ipv6_address, (*at, "ipv6_address"), rs)
            out.append(Attachment(net_name, f"eth{k}", v4, v6))
        return tuple(out)

    def _static(
        self, name: str, net: Network, text: str | None, at: Path, rs: RawService
    ) -> IP | None:
        if text is None:
            return None
        ip = IP.parse(text)
        gw = next((g for g in net.gateways if g.version == ip.version), None)
        if gw is None:
            raise TopologyError(at, f"network {net.name} has no IPv{ip.version} subnet")
        self._inside(ip, net, gw, at)
        self._take(ip, name, at, rs)
        return ip

    @staticmethod
    def _inside(ip: IP, net: Network, gw: Interface, at: Path) -> None:
        if not gw.contains(ip):
            raise TopologyError(at, f"{ip} is not in network {net.name} ({subnet_text(gw)})")
        if ip == gw.ip:
            raise TopologyError(at, f"{ip} is the gateway of network {net.name}")
        if ip.version == 4 and ip.as_int in (gw.network_int, gw.broadcast_int):
            raise TopologyError(at, f"{ip} is not a host address of {subnet_text(gw)}")

    def _take(self, ip: IP, name: str, at: Path, rs: RawService) -> None:
        owner = self.addresses.get(ip)
        if owner is not None:
            hint = ""
            if rs.replicas > 1 and "per_replica" not in at:
                hint = " (the service has replicas: give each its own in per_replica)"
            raise TopologyError(at, f"{ip} is already given to {owner}{hint}")
        self.addresses[ip] = name

    def _interfaces(
        self,
        name: str,
        rs: RawService,
        here: Path,
        over: RawReplica | None,
        attachments: tuple[Attachment, ...],
    ) -> tuple[ExtraInterface, ...]:
        items: list[tuple[RawInterface, Path]] = [
            (ri, (*here, "interfaces", j)) for j, ri in enumerate(rs.interfaces)
        ]
        extra = over.interfaces if over is not None else []
        items += [(ri, (*here, "per_replica", name, "interfaces", j)) for j, ri in enumerate(extra)]
        used = {a.ifname: f"network {a.network}'s" for a in attachments}
        for ri, at in items:  # the given names first: a default never takes one of them
            if ri.ifname is not None:
                if ri.ifname in used:
                    raise TopologyError(
                        (*at, "ifname"), f"{ri.ifname} is already {used[ri.ifname]} interface"
                    )
                used[ri.ifname] = f"the {ri.host_if}"
        out = []
        for ri, at in items:
            ifname = ri.ifname
            if ifname is None:  # pipework's eth1, or the next one free
                k = 1
                while f"eth{k}" in used:
                    k += 1
                ifname = f"eth{k}"
                used[ifname] = f"the {ri.host_if}"
            out.append(self._interface(name, rs, ri, at, ifname))
        return tuple(out)

    def _interface(
        self, name: str, rs: RawService, ri: RawInterface, at: Path, ifname: str
    ) -> ExtraInterface:
        net = next((n for n in self.networks.values() if n.bridge == ri.host_if), None)
        specs: tuple[AddressSpec, ...] = parse_addresses(ri.address) if ri.address else ()
        for spec in specs:
            if spec.interface is None:
                continue
            ip = spec.interface.ip
            gw = (
                None
                if net is None
                else next((g for g in net.gateways if g.version == ip.version), None)
            )
            if net is not None and gw is not None:
                self._inside(ip, net, gw, (*at, "address"))
            self._take(ip, name, (*at, "address"), rs)
        mac = Mac.parse(ri.mac) if ri.mac else None
        if mac is not None:
            owner = self.macs.get((ri.host_if, mac))
            if owner is not None:
                raise TopologyError((*at, "mac"), f"{mac} is already given to {owner}")
            self.macs[(ri.host_if, mac)] = name
        return ExtraInterface(
            ri.host_if, ifname, specs, mac, ri.dhcp, None if net is None else net.name
        )

    def check_links(self, replicas: tuple[Replica, ...]) -> None:
        """A link needs a common network: the linking guest reaches the target's address."""
        by_name = {r.name: r for r in replicas}
        for r in replicas:
            mine = {a.network for a in r.networks}
            for j, link in enumerate(r.links):
                theirs = {a.network for a in by_name[link.target].networks}
                if not mine & theirs:
                    raise TopologyError(
                        self.link_paths[(r.name, j)],
                        f"cannot link to {link.target}: it shares no network with {r.name}",
                    )
