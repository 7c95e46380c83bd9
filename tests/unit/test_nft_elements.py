"""Publications as DNAT map elements (``nft/elements.py``): which map, the text, the bytes.

The bytes are checked against nft's own encoding by a kernel test (elements added over
nfnetlink are listed back with ``nft -j`` and compared with the golden text); here, their layout:
each part of a concatenation in whole 32-bit registers, network byte order, zero-filled.
"""

from __future__ import annotations

import pytest

from netplumb.errors import InvalidValue
from netplumb.nft.elements import Element


def test_every_address_goes_to_the_family_wide_map() -> None:
    for hip in (None, "0.0.0.0"):
        e = Element("host:web", 4, hip, 8080, "10.89.0.2", 80, "tcp")
        assert e.map == "publish4"
        assert e.key == bytes([6, 0, 0, 0, 0x1F, 0x90, 0, 0])
        assert e.data == bytes([10, 89, 0, 2, 0, 80, 0, 0])
        assert e.text == 'tcp . 8080 comment "netplumb:host:web" : 10.89.0.2 . 80'
    e6 = Element("host:web", 6, "::", 53, "fd00:89::2", 5353, "udp")
    assert e6.map == "publish6"
    assert e6.key == bytes([17, 0, 0, 0, 0, 53, 0, 0])
    assert e6.data == bytes.fromhex("fd000089000000000000000000000002") + bytes([0x14, 0xE9, 0, 0])


def test_one_address_goes_to_the_address_map() -> None:
    e = Element("docker:0123", 4, "127.0.0.1", 5000, "10.89.0.4", 5000, "sctp")
    assert e.map == "publish4_addr"
    assert e.key == bytes([127, 0, 0, 1, 132, 0, 0, 0, 0x13, 0x88, 0, 0])
    assert e.text == '127.0.0.1 . sctp . 5000 comment "netplumb:docker:0123" : 10.89.0.4 . 5000'
    e6 = Element("host:web", 6, "::1", 8090, "fd00:89::2", 80, "tcp")
    assert (e6.map, e6.key[:16]) == ("publish6_addr", bytes(15) + b"\x01")


def test_the_comment_cannot_end_early() -> None:
    e = Element('host:we"b\\', 4, None, 80, "10.89.0.2", 80, "tcp")
    assert e.comment == "netplumb:host:we'b?"
    assert len(Element("x" * 300, 4, None, 80, "10.89.0.2", 80, "tcp").comment) == 128


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4, None, 70000, "10.89.0.2", 80, "tcp"), "invalid host port 70000"),
        ((4, None, True, "10.89.0.2", 80, "tcp"), "invalid host port True"),
        ((4, None, 80, "10.89.0.2", 80, "icmp"), "invalid protocol 'icmp'"),
        ((4, None, 80, "10.89.0.2 accept", 80, "tcp"), "invalid container address"),
        ((4, None, 80, "10.89.0.999", 80, "tcp"), "invalid container address"),
        ((4, "1.2.3.4 }", 80, "10.89.0.2", 80, "tcp"), "invalid host address"),
        ((6, "::1", 80, "10.89.0.2", 80, "tcp"), "invalid container address"),
    ],
)
def test_values_that_are_not_what_they_claim_are_refused(
    args: tuple[int, str | None, int, str, int, str], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        Element("host:web", *args)
