"""Interface addresses as written on pipework's command line: ``ip/prefix[@gateway]``."""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP, Interface
from netplumb.model.value import Value


class AddressSpec(Value):
    """One static address for a guest interface, and optionally the gateway to route through.

    ``interface`` is None for pipework's ``0/0``: the interface is created without an address.
    """

    __slots__ = ("gateway", "interface")
    interface: Interface | None
    gateway: IP | None

    def __init__(self, interface: Interface | None, gateway: IP | None = None) -> None:
        self.interface = interface
        self.gateway = gateway
        self._freeze()

    @property
    def gateway_on_link(self) -> bool:
        """Whether the gateway lies inside the interface's subnet (else a host route is needed)."""
        if self.gateway is None or self.interface is None:
            return True
        return self.interface.contains(self.gateway)

    def __str__(self) -> str:
        text = "0/0" if self.interface is None else str(self.interface)
        return text if self.gateway is None else f"{text}@{self.gateway}"


def parse_address_spec(text: str, family: int | None = None) -> AddressSpec:
    """Parse ``ip/prefix[@gateway]``; ``0/0`` means no address.

    A missing prefix is refused with pipework's hint: silently taking /32 would give an
    interface that reaches nothing.
    """
    addr_text, _, gw_text = text.partition("@")
    gateway = IP.parse(gw_text) if gw_text else None
    if gateway is not None and (gateway.is_multicast or gateway.is_unspecified):
        raise InvalidValue(f"invalid gateway address: {gw_text}")
    if addr_text in ("0/0", "0.0.0.0/0", "::/0"):
        if gateway is not None:
            raise InvalidValue(f"invalid address {text}: a gateway needs an address")
        return AddressSpec(None, None)
    if "/" not in addr_text:
        # Only a real address gets the hint: "maybe you meant foo/24" helps nobody.
        bare = IP.parse(addr_text)
        raise InvalidValue(
            f"invalid address {addr_text}: it needs a prefix length, "
            f"maybe you meant {addr_text}/{'64' if bare.version == 6 else '24'}"
        )
    iface = Interface.parse(addr_text)
    if family is not None and iface.version != family:
        raise InvalidValue(f"invalid address {addr_text}: not an IPv{family} address (-a {family})")
    if gateway is not None and gateway.version != iface.version:
        raise InvalidValue(f"invalid gateway {gateway}: not of the same family as {addr_text}")
    ip = iface.ip
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise InvalidValue(f"invalid address {addr_text}: not a unicast host address")
    if (
        iface.version == 4
        and iface.prefixlen < 31
        and ip.as_int
        in (
            iface.network_int,
            iface.broadcast_int,
        )
    ):
        raise InvalidValue(
            f"invalid address {addr_text}: the subnet's network or broadcast address"
        )
    if gateway is not None and gateway == ip:
        raise InvalidValue(f"invalid gateway {gateway}: it is the interface's own address")
    return AddressSpec(iface, gateway)
