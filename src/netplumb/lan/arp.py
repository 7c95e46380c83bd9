"""RFC 5227 ARP probes and announcements: building and reading the frames (pure).

A probe asks "who has T?" with a sender address of 0.0.0.0, so that it fills no neighbour's
cache; any ARP frame whose sender address is T (a reply, a request, an announcement), or
another host's probe for T, means T is taken. An announcement is a request whose sender and
target address are both the address now in use: neighbours update their caches.
"""

from __future__ import annotations

import struct

from netplumb.model.ip import IP
from netplumb.model.mac import Mac
from netplumb.model.value import Value

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPOP_REQUEST, ARPOP_REPLY = 1, 2
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\0" * 6
ZERO_IP = b"\0" * 4
MIN_FRAME = 60  # an Ethernet frame without its FCS: short ones are padded with zeros

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


class Timing(Value):
    """How long to probe: ``count`` probes ``interval`` seconds apart, then ``wait`` seconds
    for a late answer; ``announce`` announcements ``announce_interval`` apart."""

    __slots__ = ("announce", "announce_interval", "count", "interval", "wait")
    count: int
    interval: float
    wait: float
    announce: int
    announce_interval: float

    def __init__(
        self, count: int, interval: float, wait: float, announce: int, announce_interval: float
    ) -> None:
        self.count = count
        self.interval = interval
        self.wait = wait
        self.announce = announce
        self.announce_interval = announce_interval
        self._freeze()

    @property
    def total(self) -> float:
        return (self.count - 1) * self.interval + self.wait


# RFC 5227's constants: PROBE_NUM 3, PROBE_MIN/MAX 1-2 s, ANNOUNCE_WAIT 2 s, ANNOUNCE_NUM 2,
# ANNOUNCE_INTERVAL 2 s (a free address costs 4-6 s to prove).
RFC = Timing(3, 1.5, 2.0, 2, 2.0)
# netplumb's default: the same three probes, closer together. A host on a switched LAN answers
# within a millisecond or two; waiting seconds only matters on slow or lossy links (--rfc-timing).
FAST = Timing(3, 0.1, 0.3, 2, 0.1)


def parse_timing(text: str) -> Timing:
    """``rfc``, ``fast``, or ``COUNT,INTERVAL,WAIT`` (the NETPLUMB_ARP_TIMING variable)."""
    from netplumb.errors import InvalidValue

    if text in ("", "fast"):
        return FAST
    if text == "rfc":
        return RFC
    parts = text.split(",")
    try:
        count, interval, wait = int(parts[0]), float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise InvalidValue(
            f"invalid ARP timing {text!r}: rfc, fast or COUNT,INTERVAL,WAIT"
        ) from None
    if len(parts) != 3 or not 1 <= count <= 10 or not 0 <= interval <= 10 or not 0 < wait <= 10:
        raise InvalidValue(f"invalid ARP timing {text!r}: rfc, fast or COUNT,INTERVAL,WAIT")
    return Timing(count, interval, wait, FAST.announce, FAST.announce_interval)


def _frame(src_mac: bytes, op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    frame = _ETH.pack(BROADCAST, src_mac, ETH_P_ARP) + _ARP.pack(
        1, ETH_P_IP, 6, 4, op, sha, spa, tha, tpa
    )
    return frame + b"\0" * (MIN_FRAME - len(frame))


def probe(mac: Mac, target: IP) -> bytes:
    """An ARP probe for ``target`` from ``mac`` (sender address 0.0.0.0)."""
    _check_v4(target)
    return _frame(mac.octets, ARPOP_REQUEST, mac.octets, ZERO_IP, ZERO_MAC, target.packed)


def announcement(mac: Mac, address: IP) -> bytes:
    """An ARP announcement: ``mac`` holds ``address`` (sender = target address)."""
    _check_v4(address)
    return _frame(mac.octets, ARPOP_REQUEST, mac.octets, address.packed, ZERO_MAC, address.packed)


def _check_v4(ip: IP) -> None:
    if ip.version != 4:
        from netplumb.errors import InvalidValue

        raise InvalidValue(f"ARP is for IPv4 addresses, not {ip}")


class ArpPacket(Value):
    __slots__ = ("op", "sha", "spa", "tha", "tpa")
    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes

    def __init__(self, op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
        self.op = op
        self.sha = sha
        self.spa = spa
        self.tha = tha
        self.tpa = tpa
        self._freeze()


def parse(frame: bytes) -> ArpPacket | None:
    """The ARP packet of an Ethernet frame, or None when it is not an IPv4-over-Ethernet one."""
    if len(frame) < _ETH.size + _ARP.size:
        return None
    _dst, _src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH.size)
    if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4) or op not in (ARPOP_REQUEST, ARPOP_REPLY):
        return None
    return ArpPacket(op, sha, spa, tha, tpa)


def conflict(packet: ArpPacket, target: IP, own: Mac) -> Mac | None:
    """The MAC that claims ``target``, if ``packet`` (received while probing) shows one.

    RFC 5227 2.1.1: a packet whose sender address is the target, or a probe for the target
    from another interface, is a conflict. Our own frames (seen again on the socket) are not.
    """
    if packet.sha == own.octets or packet.sha in (ZERO_MAC, BROADCAST):
        return None
    if packet.spa == target.packed:
        return Mac(packet.sha)
    if packet.op == ARPOP_REQUEST and packet.spa == ZERO_IP and packet.tpa == target.packed:
        return Mac(packet.sha)
    return None
