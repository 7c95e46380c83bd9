"""MAC addresses: parsing, validation and pipework's ``U:text`` stable derivation."""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.value import Value


class Mac(Value):
    """A 48-bit Ethernet address."""

    __slots__ = ("octets",)
    octets: bytes

    def __init__(self, octets: bytes) -> None:
        if len(octets) != 6:
            raise ValueError("a MAC address has 6 bytes")
        self.octets = octets
        self._freeze()

    @classmethod
    def parse(cls, text: str) -> Mac:
        """Parse ``aa:bb:cc:dd:ee:ff`` (also ``-`` separated) or ``U:text``.

        Multicast addresses are refused: the kernel accepts them on a veth, and the interface
        then never receives unicast replies.
        """
        if text.startswith("U:"):
            if len(text) == 2:
                raise InvalidValue("invalid MAC address: U: needs a text to derive it from")
            return cls.derived(text[2:])
        parts = text.replace("-", ":").split(":")
        # Hex digits only: int(p, 16) alone would also take "+f", " f" and non-ASCII digits.
        if len(parts) != 6 or not all(
            1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
        ):
            raise InvalidValue(f"invalid MAC address: {text}")
        octets = bytes(int(p, 16) for p in parts)
        if octets[0] & 0x01:
            raise InvalidValue(
                f"invalid MAC address: {text}: a multicast address cannot be assigned"
            )
        if octets == b"\0" * 6:
            raise InvalidValue(
                f"invalid MAC address: {text}: the all-zero address cannot be assigned"
            )
        return cls(octets)

    @classmethod
    def derived(cls, seed: str) -> Mac:
        """A stable, locally administered unicast MAC from any text.

        The recipe of the shell idiom pipework users know for ``U:``: ``02`` followed by the
        first five bytes of the MD5 of the text as ``echo`` prints it (with a newline).
        """
        from _md5 import md5  # the C module: ``hashlib`` costs ~5 ms to import here

        # surrogateescape gives back the very bytes of a non-UTF-8 argument, as echo prints them.
        digest = md5((seed + "\n").encode(errors="surrogateescape")).digest()
        return cls(b"\x02" + digest[:5])

    @property
    def is_multicast(self) -> bool:
        return bool(self.octets[0] & 0x01)

    @property
    def is_local(self) -> bool:
        """Locally administered (the U/L bit set): never clashes with a vendor's address."""
        return bool(self.octets[0] & 0x02)

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self.octets)


def bridge_mac(bridge: str) -> bytes:
    """The MAC address of a network's bridge: fixed (locally administered, from its name).

    A Linux bridge given none takes the lowest of its ports' and changes as guests come and go;
    the guests' ARP caches keep the old one, and their packets to the gateway (the name server,
    routed traffic) go nowhere until the entries expire. A fixed address also survives
    ``reconcile`` making the bridge anew."""
    import hashlib

    return b"\x02" + hashlib.sha256(b"netplumb-bridge:" + bridge.encode()).digest()[:5]
