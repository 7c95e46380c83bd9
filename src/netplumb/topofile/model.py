"""The resolved topology: stage 2 of 2 (DESIGN rule 2). Frozen, every name bound, every default
filled, every cross reference checked; what the planner works from.

Services are expanded into their replicas here: a replica is one guest with its final name,
environment, links (to replica names), published ports (with its own host port), network
attachments and extra interfaces. ``order`` is a dependency order over links and
``depends_on``.

This module imports neither pydantic nor yaml, so the planner can use these types without
paying for the file's parser.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from netplumb.errors import InvalidValue
from netplumb.model import restart
from netplumb.model.addresses import AddressSpec
from netplumb.model.attach import AttachRequest, DhcpSpec
from netplumb.model.ip import IP
from netplumb.model.links import Link
from netplumb.model.mac import Mac
from netplumb.model.network import Network
from netplumb.model.ports import PortMapping
from netplumb.model.restart import RestartPolicy

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("services", "web", "ports", 1)`` as ``services.web.ports[1]``.

    A key that is not a plain word is quoted (``environment["A.B"]``) so the path stays
    unambiguous when a name contains a dot.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and all(c.isascii() and (c.isalnum() or c in "_-") for c in part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


class TopologyError(InvalidValue):
    """A topology file that does not validate, as one line: ``FILE:LINE: PATH: DETAIL``.

    ``path`` is where in the document (keys and list indices), ``line`` the line of that
    place in the file when the topology was read from one (1-based).
    """

    def __init__(
        self, path: Path, detail: str, file: str | None = None, line: int | None = None
    ) -> None:
        self.path = path
        self.detail = detail
        self.file = file
        self.line = line
        where = format_path(path)
        text = f"{where}: {detail}" if where else detail
        if file is not None:
            text = f"{file}:{line or 1}: {text}"
        super().__init__(text)

    def located(self, file: str, line: int) -> TopologyError:
        return TopologyError(self.path, self.detail, file, line)


@dataclass(frozen=True)
class Condition:
    """When a dependency counts as ready: ``started``, ``tcp`` (PORT open on the dependency's
    address) or ``command`` (CMD run in the dependency exits 0), within ``timeout`` seconds."""

    kind: str
    port: int | None = None
    command: str | None = None
    timeout: float = 60.0

    def __str__(self) -> str:
        if self.kind == "tcp":
            return f"tcp:{self.port}"
        if self.kind == "command":
            return f"command: {self.command}"
        return self.kind


@dataclass(frozen=True)
class Dependency:
    """``depends_on`` as written (a service or one replica) and the replicas it stands for."""

    name: str
    replicas: tuple[str, ...]
    condition: Condition


@dataclass(frozen=True)
class Attachment:
    """A replica on a network through ``ifname``; a None address is allocated by ``up``."""

    network: str
    ifname: str
    ipv4: IP | None = None
    ipv6: IP | None = None


@dataclass(frozen=True)
class ExtraInterface:
    """A pipework-style interface on ``host_if`` (a bridge, or the parent of a macvlan).

    ``network`` names the topology's (or the default) network whose bridge ``host_if`` is,
    when it is one: its addresses were checked against that network's subnets.
    """

    host_if: str
    ifname: str
    addresses: tuple[AddressSpec, ...] = ()
    mac: Mac | None = None
    dhcp: bool = False
    network: str | None = None

    def attach_request(self, guest: str) -> AttachRequest:
        """What ``netplumb attach`` (and pipework) would be asked for this interface."""
        return AttachRequest(
            guest,
            self.host_if,
            self.ifname,
            addresses=self.addresses,
            dhcp=DhcpSpec() if self.dhcp else None,
            mac=self.mac,
        )

    def __str__(self) -> str:
        what = "dhcp" if self.dhcp else ",".join(str(a) for a in self.addresses)
        mac = f" mac {self.mac}" if self.mac else ""
        net = f" (network {self.network})" if self.network else ""
        return f"{self.ifname} on {self.host_if}{net}: {what}{mac}"


@dataclass(frozen=True)
class Replica:
    """One guest of the topology: a netplumb host (``runtime`` host) or a Docker container."""

    name: str
    service: str
    index: int
    runtime: str
    command: tuple[str, ...]
    image: str | None
    hostname: str
    environment: tuple[str, ...]
    expose: tuple[tuple[int, str], ...]
    links: tuple[Link, ...]
    ports: tuple[PortMapping, ...]
    networks: tuple[Attachment, ...]
    interfaces: tuple[ExtraInterface, ...]
    depends_on: tuple[Dependency, ...]
    restart: RestartPolicy = RestartPolicy()  # noqa: RUF009 -- frozen: one shared value is fine
    aliases: tuple[str, ...] = ()  # more DNS names on its networks (--network-alias)
    link_env: bool = True  # links give Docker 28's variables; False: Docker 29's links


@dataclass(frozen=True)
class Topology:
    """A project: its networks, its replicas in file order, and the order to start them."""

    name: str
    networks: tuple[Network, ...]
    replicas: tuple[Replica, ...]
    order: tuple[str, ...]

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.service for r in self.replicas))

    def replicas_of(self, service: str) -> tuple[Replica, ...]:
        return tuple(r for r in self.replicas if r.service == service)

    def replica(self, name: str) -> Replica:
        for r in self.replicas:
            if r.name == name:
                return r
        raise KeyError(name)

    def network(self, name: str) -> Network | None:
        for n in self.networks:
            if n.name == name:
                return n
        return None


def summary(topo: Topology) -> str:
    """A stable, readable text of everything resolved (for golden tests and ``--dry-run``)."""
    lines = [f"project {topo.name}"]
    for net in topo.networks:
        subnets = " ".join(filter(None, (net.subnet, net.subnet6)))
        gateways = " ".join(str(g.ip) for g in net.gateways)
        extra = (
            (" isolation" if net.isolation else "")
            + (" internal" if net.internal else "")
            + (f" mtu {net.mtu}" if net.mtu != 1500 else "")
        )
        lines.append(
            f"network {net.name}: bridge {net.bridge}, subnet {subnets}, gateway {gateways}{extra}"
        )
    lines.append("order: " + " ".join(topo.order))
    for r in topo.replicas:
        lines += replica_lines(r)
    return "\n".join(lines) + "\n"


def replica_lines(r: Replica) -> list[str]:
    """Everything resolved about one replica, as text: what ``up`` compares to tell whether a
    running guest still matches the file."""
    lines: list[str] = []
    lines.append(f"{r.name}: service {r.service} replica {r.index}, runtime {r.runtime}")
    if r.image:
        lines.append(f"  image: {r.image}")
    if r.command:
        lines.append(f"  command: {shlex.join(r.command)}")
    lines.append(f"  hostname: {r.hostname}")
    if r.restart.name != restart.NO:
        lines.append(f"  restart: {r.restart}")
    lines += [f"  env: {e}" for e in r.environment]
    if r.expose:
        lines.append("  expose: " + " ".join(f"{p}/{proto}" for p, proto in r.expose))
    lines += [f"  link: {link}" for link in r.links]
    if r.links and not r.link_env:  # only then: a file without the key keeps its digests
        lines.append("  link variables: none (Docker 29)")
    if r.aliases:
        lines.append("  aliases: " + " ".join(r.aliases))
    for m in r.ports:
        host = m.host_text() + ("ephemeral" if m.host_port == 0 else "")
        lines.append(f"  port: {m.private} <- {host}")
    for a in r.networks:
        addrs = " ".join(str(ip) for ip in (a.ipv4, a.ipv6) if ip is not None)
        lines.append(f"  network {a.network}: {a.ifname} {addrs or 'address allocated'}")
    lines += [f"  interface {i}" for i in r.interfaces]
    for d in r.depends_on:
        which = "" if d.replicas == (d.name,) else f" ({' '.join(d.replicas)})"
        lines.append(f"  depends on {d.name}{which}: {d.condition}, {d.condition.timeout:g} s")
    return lines
