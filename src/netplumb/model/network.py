"""A netplumb network: a bridge with a subnet, the gateway address on the bridge (pure)."""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP, Interface
from netplumb.model.names import check_ifname
from netplumb.model.value import Value

DEFAULT_NETWORK = "netplumb"
DEFAULT_BRIDGE = "np0"
DEFAULT_SUBNET = "10.89.0.0/16"
# A unique local IPv6 prefix for the default network, so that ports published on every
# address answer on IPv6 as on IPv4 (as Docker's do). NETPLUMB_DEFAULT_SUBNET6=none: no IPv6.
DEFAULT_SUBNET6 = "fd89:6e70:6c62::/64"
# Each of a network's nftables rules carries the comment "netplumb:network:NAME", and nft keeps
# at most 128 bytes of a comment: a longer name made nft refuse every ruleset netplumb wrote.
NETWORK_NAME_MAX = 128 - len("netplumb:network:")


class Network(Value):
    """``gateway`` is the bridge's own address, with the subnet's prefix length; a dual-stack
    network also has ``gateway6``, its IPv6 subnet's gateway. An ``internal`` network (Docker's
    ``--internal``) has no way out: its guests reach each other and the machine's gateway
    addresses, nothing beyond, and its DNS server forwards no outside names.

    ``nat_sources``: two addresses of the IPv4 subnet the bridge also holds, never leased, that
    published ports' translated connections come from (``nat_sources_for``); empty in records
    of networks made before them (those masquerade to the gateway until adopted)."""

    __slots__ = (
        "bridge",
        "gateway",
        "gateway6",
        "internal",
        "isolation",
        "mtu",
        "name",
        "nat_sources",
    )
    name: str
    bridge: str
    gateway: Interface
    isolation: bool
    mtu: int
    gateway6: Interface | None
    internal: bool
    nat_sources: tuple[IP, ...]

    def __init__(
        self,
        name: str,
        bridge: str,
        gateway: Interface,
        isolation: bool = False,
        mtu: int = 1500,
        gateway6: Interface | None = None,
        internal: bool = False,
        nat_sources: tuple[IP, ...] = (),
    ) -> None:
        self.name = name
        self.bridge = check_ifname(bridge, "bridge name")
        self.gateway = gateway
        self.isolation = isolation
        self.mtu = mtu
        self.gateway6 = gateway6
        self.internal = internal
        self.nat_sources = nat_sources
        self._freeze()

    @property
    def reserved(self) -> frozenset[IP]:
        """Addresses of the subnets no guest may lease: the gateways and the NAT sources."""
        return frozenset((*(g.ip for g in self.gateways), *self.nat_sources))

    @property
    def loopback_source(self) -> IP | None:
        """The source of connections the machine makes to its own published ports."""
        return self.nat_sources[0] if self.nat_sources else None

    @property
    def hairpin_source(self) -> IP | None:
        """The source of connections a guest makes to a published port of this network."""
        return self.nat_sources[1] if len(self.nat_sources) > 1 else None

    def with_nat_sources(self) -> Network:
        """This network with the NAT sources its subnet gives (``nat_sources_for``)."""
        return Network(
            self.name,
            self.bridge,
            self.gateway,
            self.isolation,
            self.mtu,
            self.gateway6,
            self.internal,
            nat_sources_for(self.gateway),
        )

    def same_definition(self, other: Network) -> bool:
        """Equal but for NAT sources a record made before them lacks."""
        return self.with_nat_sources() == other.with_nat_sources()

    @property
    def gateways(self) -> tuple[Interface, ...]:
        """One gateway per family the network has, the primary first."""
        return (self.gateway,) if self.gateway6 is None else (self.gateway, self.gateway6)

    @property
    def subnet6(self) -> str | None:
        return None if self.gateway6 is None else _subnet_text(self.gateway6)

    @property
    def subnet(self) -> str:
        return _subnet_text(self.gateway)

    def to_record(self) -> dict[str, object]:
        rec: dict[str, object] = {
            "name": self.name,
            "bridge": self.bridge,
            "gateway": str(self.gateway),
            "isolation": self.isolation,
            "mtu": self.mtu,
        }
        if self.gateway6 is not None:
            rec["gateway6"] = str(self.gateway6)
        if self.internal:  # absent: not internal (records older netplumbs wrote, too)
            rec["internal"] = True
        if self.nat_sources:
            rec["nat_sources"] = [str(ip) for ip in self.nat_sources]
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, object]) -> Network:
        return cls(
            str(rec["name"]),
            str(rec["bridge"]),
            Interface.parse(str(rec["gateway"])),
            bool(rec.get("isolation", False)),
            int(str(rec.get("mtu", 1500))),
            Interface.parse(str(rec["gateway6"])) if rec.get("gateway6") else None,
            rec.get("internal") is True,
            tuple(IP.parse(str(ip)) for ip in _list(rec.get("nat_sources"))),
        )


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


# The smallest IPv4 subnet given NAT sources: a /28 has 14 host addresses, 11 left for guests.
NAT_SOURCES_MAX_PREFIX = 28


def nat_sources_for(gateway: Interface) -> tuple[IP, ...]:
    """The two addresses published ports' translated connections leave from: the subnet's
    highest host addresses other than the gateway (the loopback source first, then the hairpin
    source); none for IPv6 or a subnet smaller than a /28.

    Why not the gateway, as Docker and the portmap plugin masquerade to: the machine talks to
    its guests from the gateway address too. A connection to 127.0.0.1:PORT, translated to
    gateway:P -> guest:PORT, then lands on a 4-tuple a direct connection from gateway:P left in
    the guest's TIME_WAIT. Its TCP timestamps come from another offset (Linux derives the
    offset from the connection's own addresses and ports), so the guest rejects the SYN as
    old (PAWS, TcpExtPAWSTimewait), answers with the old connection's ACK, and the client
    retransmits its SYN a second later. An address used by nothing else keeps the translation
    one to one: the masquerade keeps the client's port, so a 4-tuple seen by the guest always
    comes from the same original connection, whose timestamps only grow."""
    if gateway.version != 4 or gateway.prefixlen > NAT_SOURCES_MAX_PREFIX:
        return ()
    out: list[IP] = []
    n = gateway.broadcast_int - 1
    while len(out) < 2:
        if n != gateway.ip.as_int:
            out.append(IP(n.to_bytes(4, "big")))
        n -= 1
    return tuple(out)


def _subnet_text(gateway: Interface) -> str:
    net = IP(gateway.network_int.to_bytes(4 if gateway.version == 4 else 16, "big"))
    return f"{net}/{gateway.prefixlen}"


def make_network(
    name: str,
    bridge: str,
    subnet: str,
    gateway: str | None = None,
    isolation: bool = False,
    mtu: int = 1500,
    subnet6: str | None = None,
    gateway6: str | None = None,
    internal: bool = False,
) -> Network:
    """Validate a network definition: the gateway defaults to the subnet's first address.

    ``subnet6`` adds an IPv6 subnet to an IPv4 network (dual stack)."""
    # ASCII only: str.isalnum() also takes letters and digits nft refuses in a chain name. The
    # name is pasted into nftables text unquoted (chain iso_NAME), so nothing else may pass.
    if not name or not all(c.isascii() and (c.isalnum() or c in "_.-") for c in name):
        raise InvalidValue(f"invalid network name: {name!r}")
    if len(name) > NETWORK_NAME_MAX:
        raise InvalidValue(
            f"invalid network name: {name[:20]!r}...: longer than {NETWORK_NAME_MAX} characters"
        )
    primary = _gateway_of(subnet, gateway)
    second = None
    if subnet6 is not None:
        second = _gateway_of(subnet6, gateway6)
        if primary.version != 4 or second.version != 6:
            raise InvalidValue(f"invalid subnets {subnet} and {subnet6}: one IPv4, then one IPv6")
    elif gateway6 is not None:
        raise InvalidValue(f"invalid gateway {gateway6}: no IPv6 subnet given")
    if not 68 <= mtu <= 65535:
        raise InvalidValue(f"invalid MTU: {mtu}")
    return Network(name, bridge, primary, isolation, mtu, second, internal).with_nat_sources()


def _gateway_of(subnet: str, gateway: str | None) -> Interface:
    """The subnet's gateway (its first host address unless given), with the subnet's prefix."""
    net = Interface.parse(subnet)
    if net.ip.as_int != net.network_int:
        raise InvalidValue(f"invalid subnet {subnet}: host bits set")
    if net.prefixlen > net.bits - 2:
        raise InvalidValue(f"invalid subnet {subnet}: too small for a gateway and a guest")
    width = 4 if net.version == 4 else 16
    gw = IP.parse(gateway) if gateway else IP((net.network_int + 1).to_bytes(width, "big"))
    if not net.contains(gw) or gw.as_int in (net.network_int, net.broadcast_int):
        raise InvalidValue(f"invalid gateway {gw}: not a host address of {subnet}")
    return Interface(gw, net.prefixlen)


def allocate(gateway: Interface, used: set[str]) -> IP:
    """The lowest free host address of the subnet (not the gateway, network or broadcast; the
    caller puts the network's other reserved addresses in ``used``)."""
    width = 4 if gateway.version == 4 else 16
    first = gateway.network_int + 1
    last = gateway.broadcast_int - (1 if gateway.version == 4 else 0)
    from _socket import AF_INET, AF_INET6, inet_pton

    family = AF_INET if gateway.version == 4 else AF_INET6
    taken = {gateway.ip.as_int}
    for u in used:  # inet_pton directly: this runs once per address for every lease
        if (":" in u) != (family == AF_INET6):
            continue  # an address of the other family
        try:
            taken.add(int.from_bytes(inet_pton(family, u), "big"))
        except OSError:
            raise InvalidValue(f"invalid IP address: {u}") from None
    candidate = first
    while candidate <= last:
        if candidate not in taken:
            return IP(candidate.to_bytes(width, "big"))
        candidate += 1
    raise InvalidValue(f"no free address left in {gateway.ip}/{gateway.prefixlen}")
