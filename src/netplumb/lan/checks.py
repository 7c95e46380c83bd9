"""MAC checks for interfaces on a shared LAN (pure)."""

from __future__ import annotations

from netplumb.model.mac import Mac


def check_mac(text: str) -> tuple[Mac, str | None]:
    """Parse a MAC for a LAN interface: multicast and all-zero are refused (``Mac.parse``);
    a universally administered one is allowed with a warning, since on a real LAN it may be
    a vendor's address that some card already carries."""
    mac = Mac.parse(text)
    if mac.is_local:
        return mac, None
    return mac, (
        f"warning: MAC {mac} is not locally administered: it may clash with a network card's "
        "own address on the LAN (locally administered ones have bit 0x02 of the first byte set)"
    )
