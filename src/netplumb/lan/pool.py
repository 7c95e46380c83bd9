"""The LAN address pool: a range inside the LAN's subnet, outside its DHCP range (pure)."""

from __future__ import annotations

from collections.abc import Iterator

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP, Interface
from netplumb.model.value import Value


def parse_range(text: str, what: str) -> tuple[IP, IP]:
    """``A-B`` (inclusive) of IPv4 addresses, A not above B."""
    first, dash, last = text.partition("-")
    if not dash:
        raise InvalidValue(
            f"invalid {what} {text!r}: expected FIRST-LAST, e.g. 192.168.1.200-192.168.1.239"
        )
    a, b = IP.parse(first.strip()), IP.parse(last.strip())
    if a.version != 4 or b.version != 4:
        raise InvalidValue(f"invalid {what} {text}: IPv4 only (addresses are probed with ARP)")
    if a.as_int > b.as_int:
        raise InvalidValue(f"invalid {what} {text}: {a} comes after {b}")
    return a, b


class LanPool(Value):
    """``subnet`` is the LAN (network address and prefix); containers get ``subnet``'s prefix
    and ``gateway`` as their default route."""

    __slots__ = ("dhcp_first", "dhcp_last", "first", "gateway", "last", "subnet")
    subnet: Interface
    first: IP
    last: IP
    gateway: IP | None
    dhcp_first: IP | None
    dhcp_last: IP | None

    def __init__(
        self,
        subnet: Interface,
        first: IP,
        last: IP,
        gateway: IP | None = None,
        dhcp_first: IP | None = None,
        dhcp_last: IP | None = None,
    ) -> None:
        self.subnet = subnet
        self.first = first
        self.last = last
        self.gateway = gateway
        self.dhcp_first = dhcp_first
        self.dhcp_last = dhcp_last
        self._freeze()

    @property
    def size(self) -> int:
        return self.last.as_int - self.first.as_int + 1

    def in_range(self, ip: IP) -> bool:
        return ip.version == 4 and self.first.as_int <= ip.as_int <= self.last.as_int

    def in_dhcp_range(self, ip: IP) -> bool:
        if self.dhcp_first is None or self.dhcp_last is None:
            return False
        return self.dhcp_first.as_int <= ip.as_int <= self.dhcp_last.as_int

    def check_wanted(self, ip: IP) -> None:
        """A fixed address asked for: in the subnet, a host address, not the gateway, not in
        the DHCP server's range (the server would hand it out too)."""
        s = self.subnet
        if not s.contains(ip) or ip.as_int in (s.network_int, s.broadcast_int):
            raise InvalidValue(f"address {ip} is not a host address of the LAN {s}")
        if ip == self.gateway:
            raise InvalidValue(f"address {ip} is the LAN's gateway")
        if self.in_dhcp_range(ip):
            raise InvalidValue(
                f"address {ip} is in the LAN's DHCP range {self.dhcp_first}-{self.dhcp_last}: "
                "the DHCP server may hand it out too"
            )

    def candidates(self, used: set[str]) -> Iterator[IP]:
        """Free addresses of the range, lowest first."""
        for n in range(self.first.as_int, self.last.as_int + 1):
            ip = IP(n.to_bytes(4, "big"))
            if str(ip) not in used and ip != self.gateway:
                yield ip

    def interface(self, ip: IP) -> Interface:
        return Interface(ip, self.subnet.prefixlen)

    def cidrs(self) -> list[Interface]:
        """The range as the fewest prefixes (for the macvlan shim's routes)."""
        out = []
        lo, hi = self.first.as_int, self.last.as_int
        while lo <= hi:
            size = (lo & -lo) if lo else 1 << 32
            while size > hi - lo + 1:
                size >>= 1
            out.append(Interface(IP(lo.to_bytes(4, "big")), 32 - size.bit_length() + 1))
            lo += size
        return out

    def to_record(self) -> dict[str, object]:
        return {
            "subnet": str(self.subnet),
            "range": f"{self.first}-{self.last}",
            "gateway": str(self.gateway) if self.gateway else None,
            "dhcp_range": f"{self.dhcp_first}-{self.dhcp_last}" if self.dhcp_first else None,
        }

    @classmethod
    def from_record(cls, rec: dict[str, object]) -> LanPool:
        first, last = parse_range(str(rec["range"]), "range")
        dhcp = parse_range(str(rec["dhcp_range"]), "DHCP range") if rec.get("dhcp_range") else None
        gw = rec.get("gateway")
        return cls(
            Interface.parse(str(rec["subnet"])),
            first,
            last,
            IP.parse(str(gw)) if gw else None,
            dhcp[0] if dhcp else None,
            dhcp[1] if dhcp else None,
        )

    def __str__(self) -> str:
        gw = f" gateway {self.gateway}" if self.gateway else ""
        dhcp = f" (DHCP range {self.dhcp_first}-{self.dhcp_last})" if self.dhcp_first else ""
        return f"{self.first}-{self.last} in {self.subnet}{gw}{dhcp}"


def make_pool(
    subnet: str, range_text: str, gateway: str | None = None, dhcp_range: str | None = None
) -> LanPool:
    """Validate a pool declaration; errors name the value at fault."""
    net = Interface.parse(subnet)
    if net.version != 4:
        raise InvalidValue(
            f"invalid LAN subnet {subnet}: IPv4 only (addresses are probed with ARP)"
        )
    if "/" not in subnet:
        raise InvalidValue(f"invalid LAN subnet {subnet}: it needs a prefix length, e.g. /24")
    if net.ip.as_int != net.network_int:
        raise InvalidValue(f"invalid LAN subnet {subnet}: host bits set")
    if net.prefixlen > 30:
        raise InvalidValue(f"invalid LAN subnet {subnet}: too small")
    first, last = parse_range(range_text, "pool range")
    for end in (first, last):
        if not net.contains(end) or end.as_int in (net.network_int, net.broadcast_int):
            raise InvalidValue(
                f"invalid pool range {range_text}: {end} is not a host address of {subnet}"
            )
    gw = IP.parse(gateway) if gateway else None
    if gw is not None:
        if not net.contains(gw) or gw.as_int in (net.network_int, net.broadcast_int):
            raise InvalidValue(f"invalid gateway {gw}: not a host address of {subnet}")
        if first.as_int <= gw.as_int <= last.as_int:
            raise InvalidValue(f"invalid pool range {range_text}: it contains the gateway {gw}")
    dhcp = parse_range(dhcp_range, "DHCP range") if dhcp_range else None
    if dhcp is not None:
        lo, hi = dhcp
        if not (net.contains(lo) and net.contains(hi)):
            raise InvalidValue(f"invalid DHCP range {dhcp_range}: not inside {subnet}")
        if lo.as_int <= last.as_int and first.as_int <= hi.as_int:
            raise InvalidValue(
                f"invalid pool range {range_text}: it overlaps the LAN's DHCP range {dhcp_range}"
            )
    return LanPool(net, first, last, gw, dhcp[0] if dhcp else None, dhcp[1] if dhcp else None)
