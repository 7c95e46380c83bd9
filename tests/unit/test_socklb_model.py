"""The socket redirection's pure part (``model/socklb.py``): who is redirected where, the maps'
bytes, and the programs' shape (every jump lands inside the program, each ends by returning 1).
The kernel's verifier and real connections are ``tests/kernel/test_socklb.py``'s."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.model import socklb

MACHINE, SRV, CLI, OTHER = 1, 2, 3, 4
REACH = socklb.Reach(
    MACHINE,
    ("192.0.2.1", "10.89.0.1"),
    (("10.89.0.0/16", (SRV, CLI)), ("10.77.0.0/24", (OTHER,))),
)
EVERYONE = [(c, a) for c in (MACHINE, SRV, CLI) for a in ("192.0.2.1", "10.89.0.1")]


@pytest.mark.parametrize(
    ("host_ip", "expected"),
    [
        # every address: the machine's 127.0.0.1 first, then each address for the machine and
        # for each guest of the target's network (the other network's guest is not among them)
        (None, [(MACHINE, "127.0.0.1"), *EVERYONE]),
        ("0.0.0.0", [(MACHINE, "127.0.0.1"), *EVERYONE]),
        ("127.0.0.1", [(MACHINE, "127.0.0.1")]),  # no guest reaches the machine's loopback
        ("192.0.2.1", [(MACHINE, "192.0.2.1"), (SRV, "192.0.2.1"), (CLI, "192.0.2.1")]),
        ("198.51.100.7", []),  # not an address of the machine's (now): the DNAT, if any
    ],
)
def test_who_is_redirected_to_a_binding(
    host_ip: str | None, expected: list[tuple[int, str]]
) -> None:
    binding = socklb.Binding(host_ip, 18080, "10.89.0.2", 8080)
    assert socklb.clients(REACH, binding) == expected


def test_a_target_off_every_open_network_is_reached_by_the_machine_only() -> None:
    binding = socklb.Binding(None, 18080, "172.17.0.2", 80)  # say a Docker container's
    assert {c for c, _a in socklb.clients(REACH, binding)} == {MACHINE}


def test_entries_put_every_127_0_0_1_entry_first() -> None:
    bindings = [socklb.Binding(None, 18000 + i, "10.89.0.2", 80) for i in range(3)]
    keys = list(socklb.entries(bindings, REACH))
    loopback = [k for k in keys if k[8:12] == bytes([127, 0, 0, 1])]
    assert keys[: len(loopback)] == loopback and len(loopback) == 3
    assert len(keys) == 3 * (1 + 3 * 2)
    assert set(socklb.entries(bindings, REACH).values()) == {socklb.value("10.89.0.2", 80)}


@given(
    st.lists(st.ip_addresses(v=4).map(str), max_size=4, unique=True),
    st.lists(st.integers(1, 2**64 - 1), max_size=5, unique=True),
    st.one_of(st.none(), st.ip_addresses(v=4).map(str)),
)
def test_clients_are_the_machine_or_the_targets_network_and_only_published_addresses(
    addresses: list[str], cookies: list[int], host_ip: str | None
) -> None:
    reach = socklb.Reach(0, tuple(addresses), (("10.89.0.0/16", tuple(cookies)),))
    found = socklb.clients(reach, socklb.Binding(host_ip, 80, "10.89.3.4", 8080))
    assert len(found) == len(set(found))
    for cookie, address in found:
        assert cookie == 0 or cookie in cookies
        assert address in addresses or (address == "127.0.0.1" and cookie == 0)
        assert host_ip in (None, "0.0.0.0", address)


@given(st.integers(0, 2**64 - 1), st.integers(1, 65535))
def test_a_key_is_the_cookie_then_the_address_and_the_port_in_network_order(
    cookie: int, port: int
) -> None:
    key = socklb.key(cookie, port)
    assert len(key) == socklb.KEY_SIZE
    assert socklb.key_cookie(key) == cookie
    assert key[8:12] == bytes([127, 0, 0, 1])
    assert socklb.key(cookie, port, "192.0.2.1")[8:12] == bytes([192, 0, 2, 1])
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
