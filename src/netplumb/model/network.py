"""A netplumb network: a bridge with a subnet, the gateway address on the bridge (pure)."""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP, Interface
from netplumb.model.names import check_ifname
from netplumb.model.value import Value

DEFAULT_NETWORK = "netplumb"
DEFAULT_BRIDGE = "np0"
DEFAULT_SUBNET = "10.89.0.0/16"


class Network(Value):
    """``gateway`` is the bridge's own address, with the subnet's prefix length."""

    __slots__ = ("bridge", "gateway", "isolation", "mtu", "name")
    name: str
    bridge: str
    gateway: Interface
    isolation: bool
    mtu: int

    def __init__(
        self, name: str, bridge: str, gateway: Interface, isolation: bool = False, mtu: int = 1500
    ) -> None:
        self.name = name
        self.bridge = check_ifname(bridge, "bridge name")
        self.gateway = gateway
        self.isolation = isolation
        self.mtu = mtu
        self._freeze()

    @property
    def subnet(self) -> str:
        net = IP(self.gateway.network_int.to_bytes(4 if self.gateway.version == 4 else 16, "big"))
        return f"{net}/{self.gateway.prefixlen}"

    def to_record(self) -> dict[str, object]:
        return {
            "name": self.name,
            "bridge": self.bridge,
            "gateway": str(self.gateway),
            "isolation": self.isolation,
            "mtu": self.mtu,
        }

    @classmethod
    def from_record(cls, rec: dict[str, object]) -> Network:
        return cls(
            str(rec["name"]),
            str(rec["bridge"]),
            Interface.parse(str(rec["gateway"])),
            bool(rec.get("isolation", False)),
            int(str(rec.get("mtu", 1500))),
        )


def make_network(
    name: str,
    bridge: str,
    subnet: str,
    gateway: str | None = None,
    isolation: bool = False,
    mtu: int = 1500,
) -> Network:
    """Validate a network definition: the gateway defaults to the subnet's first address."""
    # ASCII only: str.isalnum() also takes letters and digits nft refuses in a chain name
    if not name or not all(c.isascii() and (c.isalnum() or c in "_.-") for c in name):
        raise InvalidValue(f"invalid network name: {name!r}")
    net = Interface.parse(subnet)
    if net.ip.as_int != net.network_int:
        raise InvalidValue(f"invalid subnet {subnet}: host bits set")
    if net.prefixlen > net.bits - 2:
        raise InvalidValue(f"invalid subnet {subnet}: too small for a gateway and a guest")
    width = 4 if net.version == 4 else 16
    gw = IP.parse(gateway) if gateway else IP((net.network_int + 1).to_bytes(width, "big"))
    if not net.contains(gw) or gw.as_int in (net.network_int, net.broadcast_int):
        raise InvalidValue(f"invalid gateway {gw}: not a host address of {subnet}")
    if not 68 <= mtu <= 65535:
        raise InvalidValue(f"invalid MTU: {mtu}")
    return Network(name, bridge, Interface(gw, net.prefixlen), isolation, mtu)


def allocate(gateway: Interface, used: set[str]) -> IP:
    """The lowest free host address of the subnet (not the gateway, network or broadcast)."""
    width = 4 if gateway.version == 4 else 16
    first = gateway.network_int + 1
    last = gateway.broadcast_int - (1 if gateway.version == 4 else 0)
    taken = {IP.parse(u).as_int for u in used} | {gateway.ip.as_int}
    candidate = first
    while candidate <= last:
        if candidate not in taken:
            return IP(candidate.to_bytes(width, "big"))
        candidate += 1
    raise InvalidValue(f"no free address left in {gateway.ip}/{gateway.prefixlen}")
