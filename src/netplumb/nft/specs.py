"""What netplumb's nftables ruleset is rendered from (pure values): its networks, its
publications and, on isolated networks, the link flows allowed (``nft/render.py``)."""

from __future__ import annotations

from netplumb.model.value import Value
from netplumb.nft.elements import address


def ipkw(family: int) -> str:
    """The nft keyword of an IP family's addresses."""
    return "ip" if family == 4 else "ip6"


class NetSpec(Value):
    """A network as the ruleset sees it."""

    __slots__ = (
        "bridge",
        "family",
        "internal",
        "isolation",
        "name",
        "nat_sources",
        "ports",
        "subnet",
        "subnet6",
    )
    name: str
    bridge: str
    subnet: str
    family: int
    isolation: bool
    ports: tuple[str, ...]
    subnet6: str | None  # the IPv6 subnet of a dual-stack network
    internal: bool  # no way out: nothing routed between its bridge and any other interface
    nat_sources: tuple[str, ...]  # (loopback source, hairpin source), or none: masquerade

    def __init__(
        self,
        name: str,
        bridge: str,
        subnet: str,
        family: int,
        isolation: bool,
        ports: tuple[str, ...] = (),
        subnet6: str | None = None,
        internal: bool = False,
        nat_sources: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.bridge = bridge
        self.subnet = subnet
        self.family = family
        self.isolation = isolation
        self.ports = ports  # the bridge ports netplumb made (for isolation)
        self.subnet6 = subnet6
        self.internal = internal
        self.nat_sources = tuple(address(a, "NAT source") for a in nat_sources)
        self._freeze()

    def subnets(self) -> list[tuple[str, str]]:
        """(ip keyword, subnet) of each family the network has."""
        out = [(ipkw(self.family), self.subnet)]
        if self.subnet6:
            out.append(("ip6", self.subnet6))
        return out


class Publication(Value):
    """One DNAT: ``host_ip`` None means every local address of that family."""

    __slots__ = (
        "container_ip",
        "container_port",
        "family",
        "host_ip",
        "host_port",
        "owner",
        "proto",
    )
    owner: str
    family: int
    host_ip: str | None
    host_port: int
    container_ip: str
    container_port: int
    proto: str

    def __init__(
        self,
        owner: str,
        family: int,
        host_ip: str | None,
        host_port: int,
        container_ip: str,
        container_port: int,
        proto: str,
    ) -> None:
        self.owner = owner
        self.family = family
        self.host_ip = host_ip
        self.host_port = host_port
        self.container_ip = container_ip
        self.container_port = container_port
        self.proto = proto
        self._freeze()


class Allow(Value):
    """On an isolated network: ``src`` may reach ``dst`` on ``port``/``proto`` (a link)."""

    __slots__ = ("bridge", "dst", "owner", "port", "proto", "src")
    bridge: str
    src: str
    dst: str
    port: int
    proto: str
    owner: str

    def __init__(self, bridge: str, src: str, dst: str, port: int, proto: str, owner: str) -> None:
        self.bridge = bridge
        self.src = src
        self.dst = dst
        self.port = port
        self.proto = proto
        self.owner = owner
        self._freeze()
