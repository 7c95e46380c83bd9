"""IPv4/IPv6 addresses and interface addresses (address + prefix length).

A small replacement for ``ipaddress`` on the one-shot command path: that module costs ~7 ms
to import here. Parsing is the C library's ``inet_pton``, so what is accepted is exactly what
the kernel tools accept.
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_ntop, inet_pton

from netplumb.errors import InvalidValue
from netplumb.model.value import Value


class IP(Value):
    """One address; ``packed`` is 4 or 16 bytes in network order."""

    __slots__ = ("packed",)
    packed: bytes

    def __init__(self, packed: bytes) -> None:
        if len(packed) not in (4, 16):
            raise ValueError("an IP address has 4 or 16 bytes")
        self.packed = packed
        self._freeze()

    @classmethod
    def parse(cls, text: str) -> IP:
        family = AF_INET6 if ":" in text else AF_INET
        try:
            return cls(inet_pton(family, text))
        except (OSError, ValueError):  # ValueError: an embedded NUL or a lone surrogate
            raise InvalidValue(f"invalid IP address: {text}") from None

    @property
    def version(self) -> int:
        return 4 if len(self.packed) == 4 else 6

    @property
    def family(self) -> int:
        return AF_INET if len(self.packed) == 4 else AF_INET6

    @property
    def as_int(self) -> int:
        return int.from_bytes(self.packed, "big")

    @property
    def is_multicast(self) -> bool:
        first = self.packed[0]
        return (first & 0xF0) == 0xE0 if self.version == 4 else first == 0xFF

    @property
    def is_unspecified(self) -> bool:
        return not any(self.packed)

    @property
    def is_loopback(self) -> bool:
        if self.version == 4:
            return self.packed[0] == 127
        return self.packed == b"\0" * 15 + b"\1"

    def __str__(self) -> str:
        return inet_ntop(self.family, self.packed)


class Interface(Value):
    """An address with its prefix length, as configured on an interface (``10.0.0.2/24``)."""

    __slots__ = ("ip", "prefixlen")
    ip: IP
    prefixlen: int

    def __init__(self, ip: IP, prefixlen: int) -> None:
        bits = 32 if ip.version == 4 else 128
        if not 0 <= prefixlen <= bits:
            raise InvalidValue(f"invalid prefix length /{prefixlen} for {ip}")
        self.ip = ip
        self.prefixlen = prefixlen
        self._freeze()

    @classmethod
    def parse(cls, text: str) -> Interface:
        addr, slash, plen = text.partition("/")
        ip = IP.parse(addr)
        if not slash:
            return cls(ip, 32 if ip.version == 4 else 128)
        if not (plen.isascii() and plen.isdigit()):  # str.isdigit() also takes '²' and '٢'
            raise InvalidValue(f"invalid prefix length in {text}")
        return cls(ip, int(plen))

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def bits(self) -> int:
        return 32 if self.ip.version == 4 else 128

    def _mask(self) -> int:
        return ((1 << self.bits) - 1) ^ ((1 << (self.bits - self.prefixlen)) - 1)

    @property
    def network_int(self) -> int:
        return self.ip.as_int & self._mask()

    @property
    def broadcast_int(self) -> int:
        return self.network_int | ((1 << (self.bits - self.prefixlen)) - 1)

    def contains(self, ip: IP) -> bool:
        """Whether ``ip`` lies in this interface's subnet."""
        return ip.version == self.version and (ip.as_int & self._mask()) == self.network_int

    def __str__(self) -> str:
        return f"{self.ip}/{self.prefixlen}"
