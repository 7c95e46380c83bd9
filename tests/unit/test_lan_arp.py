"""RFC 5227 frames: probes, announcements, and what counts as a conflict."""

from __future__ import annotations

import pytest

from netplumb.errors import InvalidValue
from netplumb.lan import arp
from netplumb.model.ip import IP
from netplumb.model.mac import Mac

OWN = Mac.parse("02:00:00:00:00:01")
OTHER = Mac.parse("02:00:00:00:00:02")
T = IP.parse("192.168.1.50")


def test_a_probe_has_sender_address_zero_and_is_broadcast() -> None:
    frame = arp.probe(OWN, T)
    assert len(frame) == 60
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == OWN.octets and frame[12:14] == b"\x08\x06"
    pkt = arp.parse(frame)
    assert pkt == arp.ArpPacket(1, OWN.octets, b"\0" * 4, b"\0" * 6, T.packed)


def test_an_announcement_names_the_address_as_sender_and_target() -> None:
    pkt = arp.parse(arp.announcement(OWN, T))
    assert pkt is not None and pkt.spa == pkt.tpa == T.packed and pkt.op == 1


def test_conflicts() -> None:
    reply = arp.ArpPacket(2, OTHER.octets, T.packed, OWN.octets, b"\0" * 4)
    assert arp.conflict(reply, T, OWN) == OTHER
    other_probe = arp.ArpPacket(1, OTHER.octets, b"\0" * 4, b"\0" * 6, T.packed)
    assert arp.conflict(other_probe, T, OWN) == OTHER
    own_probe = arp.parse(arp.probe(OWN, T))
    assert own_probe is not None and arp.conflict(own_probe, T, OWN) is None
    unrelated = arp.ArpPacket(1, OTHER.octets, IP.parse("192.168.1.7").packed, b"\0" * 6, T.packed)
    assert arp.conflict(unrelated, T, OWN) is None  # someone asking for T is no claim on it


def test_parse_refuses_what_is_not_arp_over_ethernet() -> None:
    assert arp.parse(b"\0" * 10) is None
    ip_frame = b"\xff" * 6 + OWN.octets + b"\x08\x00" + b"\0" * 46
    assert arp.parse(ip_frame) is None


def test_timing() -> None:
    assert arp.parse_timing("") == arp.FAST and arp.parse_timing("rfc") == arp.RFC
    assert arp.parse_timing("2,0.1,0.2").count == 2
    with pytest.raises(InvalidValue, match="invalid ARP timing 'x'"):
        arp.parse_timing("x")
    with pytest.raises(InvalidValue, match="ARP is for IPv4 addresses, not fd00::1"):
        arp.probe(OWN, IP.parse("fd00::1"))
