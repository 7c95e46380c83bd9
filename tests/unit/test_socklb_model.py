"""The socket redirection's pure part (``model/socklb.py``): which bindings get it, the maps'
bytes, and the programs' shape (every jump lands inside the program, each ends by returning 1).
The kernel's verifier and real connections are ``tests/kernel/test_socklb.py``'s."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.model import socklb


@pytest.mark.parametrize(
    ("family", "host_ip", "proto", "expected"),
    [
        (4, None, "tcp", True),
        (4, "", "tcp", True),
        (4, "0.0.0.0", "tcp", True),
        (4, "127.0.0.1", "tcp", True),
        (4, "192.0.2.1", "tcp", False),  # another address of the machine: the DNAT
        (4, None, "udp", False),  # no connection to carry the change
        (4, None, "sctp", False),
        (6, None, "tcp", False),
        (6, "::1", "tcp", False),
    ],
)
def test_which_bindings_are_redirected(
    family: int, host_ip: str | None, proto: str, expected: bool
) -> None:
    assert socklb.qualifies(family, host_ip, proto) is expected


@given(st.integers(0, 2**64 - 1), st.integers(1, 65535))
def test_a_key_is_the_cookie_then_127_0_0_1_and_the_port_in_network_order(
    cookie: int, port: int
) -> None:
    key = socklb.key(cookie, port)
    assert len(key) == socklb.KEY_SIZE
    assert socklb.key_cookie(key) == cookie
    assert key[8:12] == bytes([127, 0, 0, 1])
    assert key[12:14] == port.to_bytes(2, "big") and key[14:] == b"\0\0"


def test_a_value_is_the_guests_address_and_port() -> None:
    assert socklb.value("10.89.0.2", 8080) == bytes([10, 89, 0, 2, 0x1F, 0x90, 0, 0])
    assert len(socklb.value("10.89.0.2", 8080)) == socklb.VALUE_SIZE


def _instructions(program: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for at in range(0, len(program), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", program, at)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


@pytest.mark.parametrize(
    "program",
    [socklb.connect_program(7, 8), socklb.peername_program(8)],
    ids=["connect4", "getpeername4"],
)
def test_every_jump_lands_inside_and_the_program_returns_1(program: bytes) -> None:
    insns = _instructions(program)
    assert len(program) % 8 == 0
    assert insns[-2] == (0xB7, 0, 0, 0, 1) and insns[-1][0] == 0x95  # r0 = 1; exit
    for at, (code, _dst, _src, off, _imm) in enumerate(insns):
        if code in (0x15, 0x55):  # conditional jumps
            target = at + 1 + off
            assert 0 < target < len(insns), (at, off)
    # the early leaves (not TCP, bound to loopback, no entry) all go to the return
    targets = {
        at + 1 + off for at, (code, *_r, off, _i) in enumerate(insns) if code in (0x15, 0x55)
    }
    assert len(insns) - 2 in targets


def test_the_maps_are_named_in_the_program() -> None:
    """The 16-byte map loads carry the fds given, in the order the program uses them."""
    insns = _instructions(socklb.connect_program(7, 8))
    loads = [imm for code, _d, src, _o, imm in insns if code == 0x18 and src == 1]
    assert loads == [7, 8]
